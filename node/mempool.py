"""The mempool: valid unconfirmed transactions waiting for a block (SPEC 3.2).

Job: accept transactions valid against the UTXO set plus the mempool itself, apply the relay
policy (standard size, minimum fee rate, chain limits, replace-by-fee, a byte limit, expiry),
keep transactions whose parents are unknown in a bounded orphan pool, follow the chain (remove
what a block confirms or conflicts with; return still-valid transactions of disconnected
blocks), and persist itself so a restart brings it back. ``clear`` empties it by hand (the
devnet's ``mempool clear``), ``remove_with_descendants`` takes out one transaction's package.

Invariants:
- Every entry is valid against the chain tip's UTXO set plus its in-mempool ancestors, as if
  mined in the next block; no two entries spend the same output.
- Entries are kept in a topological order (parents first): acceptance order, except that
  entries put back after a refused attempt come last (``seq`` keeps the acceptance order).
- A transaction accepted from outside has at most ``max_ancestors`` ancestors and
  ``max_descendants`` descendants (itself included), and at most ``max_ancestor_bytes`` and
  ``max_descendant_bytes`` of them. Transactions taken back after a reorganisation or a restart
  pass without these limits (as in Core: they were valid in a block or accepted before), so a
  chain may exceed them then; nothing new extends it until it is mined down.
- ``total_bytes`` <= ``max_bytes`` after every public call.
- Every entry's ``desc_fee``/``desc_size`` are the sums over itself and its in-mempool
  descendants (kept exactly on every add and remove), and the eviction heap holds, for every
  entry, an item with its current descendant score (stale items are skipped when popped), so
  evicting the lowest package costs O(log n), not a scan of the pool.
- A refused transaction changes nothing: a ``mempool-full`` refusal puts back what the attempt
  removed (the transactions it would have replaced and any package trimmed before it).
- Recently replaced transactions are remembered (``replaced``), bounded in entries, bytes and
  age, with the txid of the transaction that replaced each directly.
- The persisted copy (key prefix ``m`` in the node's store) holds every entry; between the
  start and the end of a reorganisation's or a restart's pass it may also hold transactions not
  yet taken back (the pass deletes those it refused at its end, never before), and the chain's
  ``returned_blocks`` records hold the transactions of disconnected blocks until the pass has
  persisted them. So a crash at any point loses no transaction that was valid: the next
  ``load`` takes back both.
- The orphan pool holds at most ``max_orphans`` transactions and ``max_orphan_bytes`` bytes,
  serialized (decoded only when a parent arrives).

Dependencies are injected: a ``ChainView`` of plain functions instead of the chainstate, the
signature verifier (the node's shared ``SignatureCache``), the clock and the store. Selection
for blocks is the miner's job (it reads ``entries``, ``ancestors`` and ``descendants``).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import msgpack

from client.models import RemovalReason
from consensus import (
    Block,
    Coin,
    NetworkParams,
    OutPoint,
    Transaction,
    ValidationError,
    check_transaction,
    is_final,
    verify_signature,
    verify_tx_inputs,
)
from consensus import errors as codes
from consensus.policy import (
    INCREMENTAL_RELAY_FEE_RATE,
    MAX_STANDARD_TX_SIZE,
    MIN_RELAY_FEE_RATE,
)
from consensus.validation import SignatureVerifier
from node.chainstate.events import BlockConnected, ChainEvent, TipChanged
from node.state import state_owned
from node.storage import KeyValueStore

log = logging.getLogger(__name__)

P_MEMPOOL = b"m"
"""Key prefix of persisted entries: ``m`` + txid -> msgpack [raw tx, entry time (float)]."""


@dataclass(frozen=True)
class MempoolPolicy:
    """Relay policy. Fee rates are base units per byte of serialized transaction."""

    min_relay_fee_rate: int = MIN_RELAY_FEE_RATE
    incremental_relay_fee_rate: int = INCREMENTAL_RELAY_FEE_RATE
    max_standard_tx_size: int = MAX_STANDARD_TX_SIZE
    """``tx-size`` beyond (``consensus.policy``); ``/info`` shows it to wallets."""
    max_bytes: int = 50_000_000
    expiry_seconds: int = 14 * 24 * 60 * 60
    max_ancestors: int = 25
    max_descendants: int = 25
    max_ancestor_bytes: int = 101_000
    max_descendant_bytes: int = 101_000
    """Core's 101 kvB: a payee's child cannot make a replacement of its parent cost more
    than about a standard transaction's worth of fees (issue 17, item 4)."""
    max_replacements: int = 100
    max_orphans: int = 100
    max_orphan_bytes: int = 4_000_000
    replaced_max_entries: int = 10_000
    replaced_max_bytes: int = 10_000_000
    replaced_max_age: int = 24 * 60 * 60


def _nothing_returned() -> list[tuple[bytes, Block]]:
    return []


def _forget_nothing(keys: list[bytes]) -> None:
    return None


@dataclass(frozen=True)
class ChainView:
    """What the mempool needs from the chain, as plain functions.

    ``returned_blocks`` and ``forget_returned`` are the chainstate's durable records of
    disconnected blocks (``Chainstate.returned_blocks``), the one source of what a
    reorganisation hands back; a view without them (a bench with no chain) gives none.
    """

    get_coin: Callable[[OutPoint], Coin | None]
    tip_height: Callable[[], int]
    has_transaction: Callable[[bytes], bool]
    returned_blocks: Callable[[], list[tuple[bytes, Block]]] = _nothing_returned
    forget_returned: Callable[[list[bytes]], None] = _forget_nothing

    @classmethod
    def of(cls, chain: ChainLike) -> ChainView:
        """The view over a chainstate, as the node wires it."""
        return cls(
            chain.get_coin,
            lambda: chain.height,
            lambda txid: chain.get_tx_location(txid) is not None,
            chain.returned_blocks,
            chain.forget_returned,
        )


class ChainLike(Protocol):
    """The chainstate's methods ``ChainView.of`` reads (``node.chainstate.Chainstate``)."""

    @property
    def height(self) -> int: ...
    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...
    def get_tx_location(self, txid: bytes) -> object | None: ...
    def returned_blocks(self) -> list[tuple[bytes, Block]]: ...
    def forget_returned(self, keys: list[bytes]) -> None: ...


@dataclass
class MempoolEntry:
    """One accepted transaction with what the policy and the miner need to know about it."""

    tx: Transaction
    txid: bytes
    fee: int
    size: int
    time: float
    spent: tuple[Coin, ...]
    parents: set[bytes] = field(default_factory=set)
    children: set[bytes] = field(default_factory=set)
    seq: int = 0
    """Acceptance order (a topological order: parents first); ties in eviction go oldest first."""
    desc_fee: int = field(default=0, init=False)
    desc_size: int = field(default=0, init=False)
    """Fees and bytes of this entry plus its in-mempool descendants (the mempool keeps them)."""

    def __post_init__(self) -> None:
        self.desc_fee = self.fee
        self.desc_size = self.size

    @property
    def fee_rate(self) -> float:
        return self.fee / self.size

    @property
    def descendant_score(self) -> float:
        """Core's descendant score: the higher of its own fee rate and its package's, so a
        parent whose child pays for it is not evicted for its own low rate."""
        return max(self.fee / self.size, self.desc_fee / self.desc_size)

    def addresses(self) -> set[bytes]:
        """Public key hashes it pays or spends from."""
        return {o.pubkey_hash for o in self.tx.outputs} | {c.output.pubkey_hash for c in self.spent}


class MempoolWatcher(Protocol):
    """What ``Mempool.watch`` tells (on the state thread, synchronously: it must not block)."""

    def added(self, entry: MempoolEntry) -> None: ...

    def removed(self, tx: Transaction, spent: tuple[Coin, ...], reason: RemovalReason) -> None:
        """``spent``: the coins ``tx`` spent (empty for a transaction of a disconnected block
        that never was in the pool)."""


@dataclass(frozen=True)
class Replaced:
    """A transaction that left the mempool because ``by`` (its direct replacer) took its place."""

    entry: MempoolEntry
    by: bytes
    time: float


@dataclass(frozen=True)
class AcceptResult:
    """``status`` is ``accepted`` or ``orphan`` (a parent is unknown; kept for later)."""

    txid: bytes
    status: str
    fee: int = 0
    replaced: tuple[bytes, ...] = ()


class _MempoolCoins:
    """Chain coins plus outputs of mempool transactions (as if confirmed at the next height)."""

    def __init__(self, pool: Mempool, excluded: set[bytes]) -> None:
        self._pool = pool
        self._excluded = excluded

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        entry = self._pool.entries.get(outpoint.txid)
        if entry is not None:
            if outpoint.txid in self._excluded or outpoint.index >= len(entry.tx.outputs):
                return None
            height = self._pool.chain.tip_height() + 1
            return Coin(entry.tx.outputs[outpoint.index], height, False)
        return self._pool.chain.get_coin(outpoint)


@state_owned
class Mempool:
    """Unconfirmed transactions, policy, orphans and persistence."""

    def __init__(
        self,
        chain: ChainView,
        params: NetworkParams,
        *,
        policy: MempoolPolicy | None = None,
        verify: SignatureVerifier = verify_signature,
        clock: Callable[[], float] = time.time,
        store: KeyValueStore | None = None,
    ) -> None:
        self.chain = chain
        self.params = params
        self.policy = policy or MempoolPolicy()
        self._verify = verify
        self._clock = clock
        self._store = store
        self.entries: dict[bytes, MempoolEntry] = {}
        self.spenders: dict[OutPoint, bytes] = {}
        self.by_address: dict[bytes, set[bytes]] = {}
        self.total_bytes = 0
        self.total_fee = 0
        self._orphans: OrderedDict[bytes, tuple[bytes, frozenset[bytes]]] = OrderedDict()
        """txid -> (serialized tx, txids of its inputs), oldest first."""
        self._orphan_bytes = 0
        self._listeners: list[Callable[[MempoolEntry], None]] = []
        self._watchers: list[MempoolWatcher] = []
        self._pass_reasons: dict[bytes, RemovalReason] | None = None
        """During a take-back pass (``_take_back``): why each transaction that did not come
        back left; the pass tells the watchers once it ends."""
        self._seq = 0
        self._heap: list[tuple[float, int, bytes]] = []
        """Eviction candidates (descendant score, seq, txid); an item is current only while it
        equals ``(entry.descendant_score, entry.seq, txid)`` of an entry in the pool."""
        self.replaced: OrderedDict[bytes, Replaced] = OrderedDict()
        self.replaced_bytes = 0

    # --- reading --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.entries

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self.entries.get(txid)

    def orphan_count(self) -> int:
        return len(self._orphans)

    def orphan_bytes(self) -> int:
        """Serialized bytes in the orphan pool (at most ``policy.max_orphan_bytes``)."""
        return self._orphan_bytes

    def ancestors(self, txid: bytes) -> set[bytes]:
        """In-mempool ancestors of ``txid`` (not itself)."""
        found: set[bytes] = set()
        stack = list(self.entries[txid].parents)
        while stack:
            t = stack.pop()
            if t not in found:
                found.add(t)
                stack.extend(self.entries[t].parents)
        return found

    def descendants(self, txid: bytes) -> set[bytes]:
        """In-mempool descendants of ``txid`` (not itself)."""
        found: set[bytes] = set()
        stack = list(self.entries[txid].children)
        while stack:
            t = stack.pop()
            if t not in found:
                found.add(t)
                stack.extend(self.entries[t].children)
        return found

    def replaced_by(self, txid: bytes) -> Replaced | None:
        """The record of ``txid``'s recent replacement, if it is still remembered."""
        self._forget_old_replacements()
        return self.replaced.get(txid)

    def subscribe(self, listener: Callable[[MempoolEntry], None]) -> None:
        """Call ``listener(entry)`` for every newly accepted transaction (relay, miner). A
        reorganisation's take-back calls it again for every entry it keeps."""
        self._listeners.append(listener)

    def watch(self, watcher: MempoolWatcher) -> None:
        """Tell ``watcher`` of every change of the pool's contents, each once: a transaction
        that enters it (``added``) and one that leaves it, with the reason (``removed``); after
        a reorganisation, the transactions of disconnected blocks that did not come back are
        ``removed`` too (``reorg`` or ``conflict``), and the entries kept are not announced
        again. For the event stream (``node.events``)."""
        self._watchers.append(watcher)

    def _removed(self, entries: Iterable[MempoolEntry], reason: RemovalReason) -> None:
        if self._pass_reasons is not None:
            for e in entries:
                self._pass_reasons[e.txid] = reason
            return
        for e in entries:
            for watcher in self._watchers:
                watcher.removed(e.tx, e.spent, reason)

    # --- accepting ------------------------------------------------------------------------------

    def accept(
        self, tx: Transaction, *, entry_time: float | None = None, keep_orphan: bool = True
    ) -> AcceptResult:
        """Validate ``tx`` against chain and mempool and add it; ``ValidationError`` if refused.

        A transaction with an unknown parent is kept as an orphan (``status="orphan"``), or,
        with ``keep_orphan=False`` (a client submitting directly), refused with
        ``bad-txns-inputs-missingorspent``. Then tries the orphans that were waiting for it.
        """
        result = self._accept_one(tx, entry_time, keep_orphan)
        if result.status == "accepted":
            self._adopt_orphans(result.txid)
        return result

    def _accept_one(
        self,
        tx: Transaction,
        entry_time: float | None,
        keep_orphan: bool = True,
        bypass_limits: bool = False,
    ) -> AcceptResult:
        policy = self.policy
        txid = tx.txid()
        if txid in self.entries:
            raise ValidationError(codes.TXN_ALREADY_KNOWN, "already in the mempool")
        check_transaction(tx, self.params)
        if tx.is_coinbase():
            raise ValidationError(codes.COINBASE, "a coinbase is only valid in a block")
        size = tx.size()
        if size > policy.max_standard_tx_size:
            raise ValidationError(
                codes.TX_SIZE,
                f"{size} bytes, more than the standard {policy.max_standard_tx_size:,}",
            )
        if self.chain.has_transaction(txid):
            raise ValidationError(codes.TXN_ALREADY_KNOWN, "already confirmed")
        next_height = self.chain.tip_height() + 1
        if not is_final(tx, next_height):
            raise ValidationError(
                codes.BAD_TXNS_NONFINAL, f"locktime {tx.locktime} not final at {next_height}"
            )

        # Conflicts: mempool transactions spending the same outputs, and their descendants.
        direct = {self.spenders[i.prevout] for i in tx.inputs if i.prevout in self.spenders}
        evicted: set[bytes] = set(direct)
        for conflict in direct:
            evicted |= self.descendants(conflict)
        if len(evicted) > policy.max_replacements:
            raise ValidationError(
                codes.TXN_MEMPOOL_CONFLICT, f"would replace {len(evicted)} transactions"
            )
        for txin in tx.inputs:
            if txin.prevout.txid in evicted:
                raise ValidationError(
                    codes.TXN_MEMPOOL_CONFLICT, "spends an output of a transaction it replaces"
                )

        # Missing inputs: an unknown parent makes an orphan; a known one means spent.
        view = _MempoolCoins(self, evicted)
        for txin in tx.inputs:
            if view.get_coin(txin.prevout) is None:
                parent = txin.prevout.txid
                if parent in self.entries or self.chain.has_transaction(parent):
                    raise ValidationError(
                        codes.BAD_TXNS_INPUTS_MISSINGORSPENT, f"{txin.prevout} is spent"
                    )
                if not keep_orphan:
                    raise ValidationError(
                        codes.BAD_TXNS_INPUTS_MISSINGORSPENT,
                        f"{txin.prevout}: its transaction is unknown to this node",
                    )
                self._add_orphan(txid, tx, size)
                return AcceptResult(txid, "orphan")

        fee = verify_tx_inputs(tx, view, next_height, self.params, self._verify)
        if fee < policy.min_relay_fee_rate * size:
            raise ValidationError(
                codes.MIN_RELAY_FEE_NOT_MET,
                f"fee {fee} < {policy.min_relay_fee_rate} per byte x {size} bytes",
            )

        if direct:
            self._check_replacement(fee, size, direct, evicted)

        parents = {i.prevout.txid for i in tx.inputs if i.prevout.txid in self.entries}
        if not bypass_limits:
            self._check_chain_limits(size, parents, evicted)

        spent = tuple(view.get_coin(i.prevout) for i in tx.inputs)
        self._seq += 1
        entry = MempoolEntry(
            tx,
            txid,
            fee,
            size,
            self._clock() if entry_time is None else entry_time,
            spent,  # type: ignore[arg-type]  # all present: checked above
            parents,
            seq=self._seq,
        )
        replaced = self._remove_entries(evicted)
        self._add_entry(entry)
        trimmed = self._trim_to_size()
        if txid not in self.entries:
            # Trimmed away itself (or with an ancestor's package): refuse, and undo everything
            # this attempt removed, so that a refusal changes nothing.
            self._restore([e for e in replaced + trimmed if e.txid != txid])
            raise ValidationError(codes.MEMPOOL_FULL, "fee rate too low for a full mempool")
        if trimmed:
            log.info("mempool full: evicted %d transaction(s)", len(trimmed))
        if replaced:
            log.info(
                "%s replaced %s",
                txid[::-1].hex(),
                ", ".join(e.txid[::-1].hex() for e in replaced),
            )
            self._remember_replaced(replaced, txid)
        self._removed(replaced, "replaced")
        if self._pass_reasons is None:
            for watcher in self._watchers:
                watcher.added(entry)
        self._removed(trimmed, "evicted")
        for listener in self._listeners:
            listener(entry)
        return AcceptResult(txid, "accepted", fee, tuple(evicted))

    def _check_chain_limits(self, size: int, parents: set[bytes], evicted: set[bytes]) -> None:
        """Ancestor and descendant limits, in transactions and in bytes (Core's 25 and 101 kvB),
        counting the new transaction and leaving out what it would replace."""
        policy = self.policy
        ancestors = set(parents)
        for parent in parents:
            ancestors |= self.ancestors(parent)
        if len(ancestors) + 1 > policy.max_ancestors:
            raise ValidationError(
                codes.TOO_LONG_MEMPOOL_CHAIN,
                f"{len(ancestors) + 1} transactions in the chain, at most {policy.max_ancestors}",
            )
        ancestor_bytes = size + sum(self.entries[a].size for a in ancestors)
        if ancestor_bytes > policy.max_ancestor_bytes:
            raise ValidationError(
                codes.TOO_LONG_MEMPOOL_CHAIN,
                f"{ancestor_bytes:,} bytes with its ancestors, at most "
                f"{policy.max_ancestor_bytes:,}",
            )
        for ancestor in ancestors:
            descendants = self.descendants(ancestor)
            if len(descendants - evicted) + 2 > policy.max_descendants:
                raise ValidationError(
                    codes.TOO_LONG_MEMPOOL_CHAIN,
                    f"an ancestor would have more than {policy.max_descendants} descendants",
                )
            package = self.entries[ancestor].desc_size + size
            package -= sum(self.entries[d].size for d in descendants & evicted)
            if package > policy.max_descendant_bytes:
                raise ValidationError(
                    codes.TOO_LONG_MEMPOOL_CHAIN,
                    f"an ancestor's package would be {package:,} bytes, at most "
                    f"{policy.max_descendant_bytes:,}",
                )

    def _check_replacement(
        self, fee: int, size: int, direct: set[bytes], evicted: set[bytes]
    ) -> None:
        """Replace-by-fee: a higher fee rate than every transaction it conflicts with, and an
        absolute fee above all it evicts by at least the incremental rate times its size."""
        rate = fee / size
        for conflict in direct:
            if rate <= self.entries[conflict].fee_rate:
                raise ValidationError(
                    codes.INSUFFICIENT_FEE,
                    f"fee rate {rate:.3f} does not beat {self.entries[conflict].fee_rate:.3f}",
                )
        replaced_fees = sum(self.entries[t].fee for t in evicted)
        needed = replaced_fees + self.policy.incremental_relay_fee_rate * size
        if fee < needed:
            raise ValidationError(
                codes.INSUFFICIENT_FEE, f"fee {fee} < {needed} (replaced fees plus relay)"
            )

    def _add_entry(self, entry: MempoolEntry) -> None:
        if self._store is not None:  # first: if the write fails, nothing changes in memory
            value = msgpack.packb([entry.tx.serialize(), entry.time], use_bin_type=True)
            self._store.put(P_MEMPOOL + entry.txid, value)
        self.entries[entry.txid] = entry
        for parent in entry.parents:
            self.entries[parent].children.add(entry.txid)
        for txin in entry.tx.inputs:
            self.spenders[txin.prevout] = entry.txid
        for pkh in entry.addresses():
            self.by_address.setdefault(pkh, set()).add(entry.txid)
        self.total_bytes += entry.size
        self.total_fee += entry.fee
        self._push(entry)
        for ancestor in self.ancestors(entry.txid):
            a = self.entries[ancestor]
            a.desc_fee += entry.fee
            a.desc_size += entry.size
            self._push(a)

    def _remove_entry(self, txid: bytes) -> MempoolEntry | None:
        """Remove one entry (not its descendants, which the caller handles)."""
        entry = self.entries.get(txid)
        if entry is None:
            return None
        ancestors = self.ancestors(txid)
        leaf = not any(c in self.entries for c in entry.children)
        del self.entries[txid]
        for parent in entry.parents:
            if parent in self.entries:
                self.entries[parent].children.discard(txid)
        for child in entry.children:
            if child in self.entries:
                self.entries[child].parents.discard(txid)
        for txin in entry.tx.inputs:
            if self.spenders.get(txin.prevout) == txid:
                del self.spenders[txin.prevout]
        for pkh in entry.addresses():
            txids = self.by_address.get(pkh)
            if txids is not None:
                txids.discard(txid)
                if not txids:
                    del self.by_address[pkh]
        self.total_bytes -= entry.size
        self.total_fee -= entry.fee
        for ancestor in ancestors:
            a = self.entries[ancestor]
            if leaf:  # only its own share leaves each ancestor's package
                a.desc_fee -= entry.fee
                a.desc_size -= entry.size
            else:  # its children stay but may no longer descend from this ancestor
                package = [a, *(self.entries[d] for d in self.descendants(ancestor))]
                a.desc_fee = sum(e.fee for e in package)
                a.desc_size = sum(e.size for e in package)
            self._push(a)
        if self._store is not None:
            self._store.delete(P_MEMPOOL + txid)
        return entry

    def _remove_entries(self, txids: Iterable[bytes]) -> list[MempoolEntry]:
        """Remove ``txids`` newest first (children before parents: every removal is of a leaf
        of what remains, the cheap case); return the removed entries, newest first."""
        present = sorted(
            (self.entries[t] for t in set(txids) if t in self.entries),
            key=lambda e: e.seq,
            reverse=True,
        )
        for e in present:
            self._remove_entry(e.txid)
        return present

    def remove_with_descendants(
        self, txid: bytes, reason: RemovalReason = "conflict"
    ) -> list[bytes]:
        """Remove ``txid`` and everything that spends from it, for ``reason`` (SPEC 3.6's
        ``tx_removed`` reasons: ``conflict``, ``reorg`` for a scripted reorg's drops,
        ``evicted`` for a clear by hand; the watchers hear it); return what was removed."""
        if txid not in self.entries:
            return []
        removed = self._remove_entries([txid, *self.descendants(txid)])
        self._removed(removed, reason)
        return [e.txid for e in removed]

    def clear(self) -> int:
        """Remove every transaction, and every orphan, from memory and from the store (one
        batch); return how many entries there were (the devnet's ``mempool clear``)."""
        count = len(self.entries)
        gone = list(self.entries.values())
        if self._store is not None and self.entries:
            with self._store.write_batch(sync=False) as batch:
                for txid in self.entries:
                    batch.delete(P_MEMPOOL + txid)
        self._forget_entries_in_memory()
        self._removed(sorted(gone, key=lambda e: -e.seq), "evicted")  # children first
        self._orphans.clear()
        self._orphan_bytes = 0
        return count

    def _restore(self, removed: Iterable[MempoolEntry]) -> None:
        """Put back entries removed by a refused attempt, oldest first (parents first), with
        their links and package sums rebuilt from what is in the pool."""
        for e in sorted(removed, key=lambda e: e.seq):
            e.parents = {i.prevout.txid for i in e.tx.inputs if i.prevout.txid in self.entries}
            e.children = set()
            e.desc_fee, e.desc_size = e.fee, e.size
            self._add_entry(e)

    # --- eviction -------------------------------------------------------------------------------

    def _push(self, entry: MempoolEntry) -> None:
        """Record ``entry``'s current descendant score on the heap (older items go stale)."""
        heapq.heappush(self._heap, (entry.descendant_score, entry.seq, entry.txid))
        if len(self._heap) > 2 * len(self.entries) + 1_000:
            self._heap = [(e.descendant_score, e.seq, t) for t, e in self.entries.items()]
            heapq.heapify(self._heap)

    def _pop_lowest(self) -> bytes | None:
        """The txid of the entry with the lowest descendant score (oldest first on ties)."""
        while self._heap:
            score, seq, txid = heapq.heappop(self._heap)
            entry = self.entries.get(txid)
            if entry is not None and entry.seq == seq and entry.descendant_score == score:
                return txid
        return None

    def _trim_to_size(self) -> list[MempoolEntry]:
        """Evict the lowest descendant-score packages (a transaction with its descendants)
        until the pool fits; return what was evicted, newest first within each package."""
        evicted: list[MempoolEntry] = []
        while self.total_bytes > self.policy.max_bytes and self.entries:
            worst = self._pop_lowest()
            if worst is None:  # cannot happen while entries exist: every entry has an item
                raise AssertionError("eviction heap out of step with the entries")
            evicted += self._remove_entries([worst, *self.descendants(worst)])
        return evicted

    # --- recent replacements --------------------------------------------------------------------

    def _remember_replaced(self, removed: Iterable[MempoolEntry], by: bytes) -> None:
        """Remember ``removed`` as replaced by ``by`` (bounded: entries, bytes, age)."""
        now = self._clock()
        for e in removed:
            old = self.replaced.pop(e.txid, None)
            if old is not None:
                self.replaced_bytes -= old.entry.size
            self.replaced[e.txid] = Replaced(e, by, now)
            self.replaced_bytes += e.size
        policy = self.policy
        while self.replaced and (
            len(self.replaced) > policy.replaced_max_entries
            or self.replaced_bytes > policy.replaced_max_bytes
        ):
            _, gone = self.replaced.popitem(last=False)
            self.replaced_bytes -= gone.entry.size
        self._forget_old_replacements(now)

    def _forget_old_replacements(self, now: float | None = None) -> None:
        limit = (self._clock() if now is None else now) - self.policy.replaced_max_age
        while self.replaced:
            oldest = next(iter(self.replaced.values()))
            if oldest.time >= limit:
                break
            self.replaced.popitem(last=False)
            self.replaced_bytes -= oldest.entry.size

    # --- orphans --------------------------------------------------------------------------------

    def _add_orphan(self, txid: bytes, tx: Transaction, size: int) -> None:
        """Keep ``tx`` serialized (a decoded one takes several times its size) and evict the
        oldest until the pool fits its count and its bytes."""
        if txid in self._orphans:
            self._orphans.move_to_end(txid)
            return
        self._orphans[txid] = (tx.serialize(), frozenset(i.prevout.txid for i in tx.inputs))
        self._orphan_bytes += size
        policy = self.policy
        while self._orphans and (
            len(self._orphans) > policy.max_orphans or self._orphan_bytes > policy.max_orphan_bytes
        ):
            _, (raw, _) = self._orphans.popitem(last=False)
            self._orphan_bytes -= len(raw)

    def _adopt_orphans(self, parent_txid: bytes) -> None:
        if not self._orphans:
            return
        queue = [parent_txid]
        while queue:
            parent = queue.pop()
            waiting = [t for t, (_, inputs) in self._orphans.items() if parent in inputs]
            for txid in waiting:
                raw, _ = self._orphans.pop(txid)
                self._orphan_bytes -= len(raw)
                try:
                    result = self._accept_one(Transaction.deserialize(raw), None)
                except ValidationError as err:
                    log.debug("orphan %s refused: %s", txid[::-1].hex(), err.code)
                    continue
                if result.status == "accepted":
                    queue.append(txid)

    # --- following the chain --------------------------------------------------------------------

    def on_chain_event(self, event: ChainEvent) -> None:
        """Subscribe this to the chainstate."""
        if isinstance(event, BlockConnected):
            self._block_connected(event)
        elif isinstance(event, TipChanged):
            if event.reorg_depth:
                self._resubmit_after_reorg()
            self.expire()

    def _block_connected(self, event: BlockConnected) -> None:
        for tx in event.block.txs[1:]:
            txid = tx.txid()
            confirmed = self._remove_entry(txid)  # its children stay: their parent is confirmed
            if confirmed is not None:
                self._removed([confirmed], "confirmed")
            for txin in tx.inputs:
                other = self.spenders.get(txin.prevout)
                if other is not None and other != txid:
                    self.remove_with_descendants(other, "conflict")  # conflicts with the block
        for tx in event.block.txs[1:]:
            self._adopt_orphans(tx.txid())

    def _resubmit_after_reorg(self) -> None:
        """Take back the transactions of the disconnected blocks and re-validate the previous
        entries against the new chain (``_take_back``)."""
        kept = self._take_back([])
        log.info("mempool after reorganisation: %d transaction(s) kept", kept)

    def _take_back(self, saved: list[tuple[bytes, bytes, float]]) -> int:
        """Re-accept, against the current tip, the transactions of disconnected blocks (the
        chain's durable records), the current entries and ``saved``
        (persisted ``(txid, raw tx, entry time)``, read by ``load``); return the pool's size.

        The pass is crash-safe: the store is not touched before it starts, so until it ends every
        previous entry is still persisted and the chain still holds its records; only at its end
        are the refused entries' keys deleted and the records forgotten. All candidates are
        accepted parents first (``_topological``), each keeping its entry time, without chain
        limits (they were valid in a block or accepted before: Core's reorg handling), and
        without the orphan pool (a transaction whose parent is gone is dropped)."""
        records = self.chain.returned_blocks()
        candidates: list[tuple[Transaction, float | None]] = []
        for _, block in records:
            candidates += [(tx, None) for tx in block.txs[1:]]
        previous = sorted(self.entries.values(), key=lambda e: e.seq)
        candidates += [(e.tx, e.time) for e in previous]
        persisted = {e.txid for e in previous}
        for txid, raw, when in saved:
            persisted.add(txid)
            try:
                candidates.append((Transaction.deserialize(raw), when))
            except ValidationError:
                log.warning("dropping an unreadable persisted mempool transaction")
        returned = {tx.txid(): tx for tx, when in candidates if when is None}
        before = {e.txid: e for e in previous}
        self._forget_entries_in_memory()
        reasons: dict[bytes, RemovalReason] = {}
        self._pass_reasons = reasons
        try:
            for tx, entry_time in _topological(candidates):
                try:
                    self._accept_one(tx, entry_time, keep_orphan=False, bypass_limits=True)
                except ValidationError as err:
                    log.debug("not taken back: %s: %s", tx.txid()[::-1].hex(), err.code)
                    if err.code != codes.TXN_ALREADY_KNOWN:  # confirmed: the block said so
                        reasons[tx.txid()] = "conflict" if self._spends_spent(tx) else "reorg"
        finally:
            self._pass_reasons = None
        self._tell_watchers_after_pass(before, returned, reasons)
        if self._store is not None:
            with self._store.write_batch(sync=False) as batch:
                for txid in persisted - self.entries.keys():
                    batch.delete(P_MEMPOOL + txid)
        self.chain.forget_returned([key for key, _ in records])
        return len(self.entries)

    def _spends_spent(self, tx: Transaction) -> bool:
        """Whether ``tx`` spends an output that the chain or the pool already spent (a
        conflict), rather than one that no longer exists at all (its transaction left)."""
        view = _MempoolCoins(self, set())
        for txin in tx.inputs:
            parent = txin.prevout.txid
            if view.get_coin(txin.prevout) is None and (
                parent in self.entries or self.chain.has_transaction(parent)
            ):
                return True
            if txin.prevout in self.spenders:
                return True
        return False

    def _tell_watchers_after_pass(
        self,
        before: dict[bytes, MempoolEntry],
        returned: dict[bytes, Transaction],
        reasons: dict[bytes, RemovalReason],
    ) -> None:
        """After a take-back pass: the watchers hear of what entered the pool (in acceptance
        order), then of the previous entries and returned transactions that did not."""
        if not self._watchers:
            return
        for e in sorted(self.entries.values(), key=lambda e: e.seq):
            if e.txid not in before:
                for watcher in self._watchers:
                    watcher.added(e)
        for txid, e in before.items():
            if txid not in self.entries:
                for watcher in self._watchers:
                    watcher.removed(e.tx, e.spent, reasons.get(txid, "reorg"))
        for txid, tx in returned.items():
            if txid not in self.entries and txid not in before and txid in reasons:
                for watcher in self._watchers:
                    watcher.removed(tx, (), reasons[txid])

    def _forget_entries_in_memory(self) -> None:
        """Empty the pool in memory only: the persisted copy stays until ``_take_back`` ends."""
        self.entries.clear()
        self.spenders.clear()
        self.by_address.clear()
        self.total_bytes = 0
        self.total_fee = 0
        self._heap = []

    def expire(self, now: float | None = None) -> list[bytes]:
        """Remove entries older than the expiry (with their descendants)."""
        now = self._clock() if now is None else now
        limit = now - self.policy.expiry_seconds
        removed: list[bytes] = []
        for txid in [t for t, e in self.entries.items() if e.time < limit]:
            removed += self.remove_with_descendants(txid, "expired")
        if removed:
            log.info("expired %d transaction(s)", len(removed))
        return removed

    # --- persistence ----------------------------------------------------------------------------

    def load(self) -> int:
        """Take back the persisted transactions and those of blocks disconnected before the
        last stop (after a restart); return how many are in the pool. Parents come before their
        children whatever their entry times, and each keeps its time (``_take_back``)."""
        if self._store is None:
            return 0
        saved: list[tuple[bytes, bytes, float]] = []
        unreadable: list[bytes] = []
        for key, value in self._store.iterate(P_MEMPOOL):
            try:
                raw, when = msgpack.unpackb(value, raw=True)
                saved.append((key[len(P_MEMPOOL) :], bytes(raw), float(when)))
            except (ValueError, TypeError, msgpack.UnpackException):
                log.warning("dropping an unreadable persisted mempool entry")
                unreadable.append(key)
        for key in unreadable:
            self._store.delete(key)
        saved.sort(key=lambda s: s[2])  # oldest first: acceptance order follows entry time
        self._take_back(saved)
        self.expire()
        restored = len(self.entries)
        log.info("mempool: %d transaction(s) restored", restored)
        return restored

    def reload(self) -> int:
        """Forget everything held in memory (entries, orphans, recent replacements) and
        ``load`` again from the store, whose contents were replaced underneath (a devnet
        revert). Subscribers stay subscribed but hear nothing of the transactions loaded, as at
        start-up (a miner mining on each new transaction would otherwise move the chain on at
        once); P2P announces the pool to every peer it dials afterwards. The pool's size."""
        self._forget_entries_in_memory()
        self._orphans.clear()
        self._orphan_bytes = 0
        self.replaced.clear()
        self.replaced_bytes = 0
        listeners, self._listeners = self._listeners, []
        try:
            return self.load()
        finally:
            self._listeners = listeners

    def transactions(self) -> Iterable[Transaction]:
        return (e.tx for e in self.entries.values())


def _topological(
    candidates: list[tuple[Transaction, float | None]],
) -> list[tuple[Transaction, float | None]]:
    """``candidates`` without repeats (at the first one's place, with the first entry time
    known), parents before children; otherwise in the given order (Kahn's algorithm, the
    smallest position first)."""
    first: dict[bytes, int] = {}
    when: dict[bytes, float] = {}
    for pos, (tx, time_) in enumerate(candidates):
        first.setdefault(tx.txid(), pos)
        if time_ is not None:
            when.setdefault(tx.txid(), time_)
    waiting_on: dict[int, int] = {}
    children: dict[bytes, list[int]] = {}
    ready: list[int] = []
    for txid, pos in first.items():
        parents = {i.prevout.txid for i in candidates[pos][0].inputs} & first.keys()
        parents.discard(txid)
        waiting_on[pos] = len(parents)
        for parent in parents:
            children.setdefault(parent, []).append(pos)
        if not parents:
            ready.append(pos)
    heapq.heapify(ready)
    ordered: list[tuple[Transaction, float | None]] = []
    while ready:
        pos = heapq.heappop(ready)
        tx = candidates[pos][0]
        ordered.append((tx, when.get(tx.txid())))
        for child in children.get(tx.txid(), ()):
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                heapq.heappush(ready, child)
    return ordered  # a cycle cannot occur (txids commit to their inputs); its members would drop
