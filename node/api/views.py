"""Read models of the HTTP API: the JSON shapes of SPEC 3.5, built from chainstate and mempool.

Every function here is a query: it reads, never writes, and runs on the node's state thread
(handlers reach it through ``NodeService.read``, which bounds how many wait there ahead of the
node's own work). Amounts are base units, hashes display hex (reversed), times Unix seconds.
``NotFoundError`` means the object is unknown (HTTP 404). Every answer is a model of
``client.models`` (the handlers encode it; the OpenAPI document is generated from the models).

Costs: a query reads in proportion to what it returns. A confirmed transaction is one ``t``
record of the chainstate (the transaction and the coins it spent), never its block; an address
page is 25 of those plus their outputs' spender entries; the immature balance reads only the
address's recent coinbase outputs; an active-chain block's summary and transaction pages come
from the chainstate's per-block records. Only a block off the active chain (no such records) and
``/block/{hash}/raw`` read a whole block; a merkle proof reads every leaf of its block (64 bytes
a transaction, never decoded), since it needs them all.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import dropwhile, islice

from client import models as m
from consensus import (
    AddressError,
    Block,
    Coin,
    ExtendedKeyError,
    OutPoint,
    Transaction,
    decode_address,
    decode_xpub,
    encode_address,
    merkle_branch,
    tx_fee,
)
from node.chainstate import BlockIndexEntry, BlockSummary, Chainstate
from node.interfaces import NodeStatus
from node.mempool import Mempool, MempoolPolicy

BLOCKS_PAGE = 10
TXS_PAGE = 25
UTXO_PAGE = 1000
"""Unspent outputs per page of ``/address/{address}/utxo`` (cursor ``after=TXID:N``)."""
MEMPOOL_TXIDS_PAGE = 10_000
"""Txids per page of ``/mempool/txids`` (cursor ``after_txid``)."""
MEMPOOL_RECENT = 10


class NotFoundError(LookupError):
    """The block, transaction or address asked for is not known."""


def display(h: bytes) -> str:
    """A hash as Bitcoin shows it: byte-reversed hex."""
    return h[::-1].hex()


def utxo_row(
    outpoint: OutPoint, amount: int, height: int | None, coinbase: bool, tip: int
) -> m.Utxo:
    """One unspent output as ``/address/{a}/utxo`` shows it (``height`` None: in the mempool)."""
    return m.Utxo(
        txid=display(outpoint.txid),
        index=outpoint.index,
        amount=amount,
        height=height,
        coinbase=coinbase,
        confirmations=0 if height is None else tip - height + 1,
    )


def policy_model(policy: MempoolPolicy) -> m.Policy:
    """The part of the mempool's policy a wallet builds within, as ``/info`` shows it."""
    return m.Policy(
        min_relay_fee_rate=policy.min_relay_fee_rate,
        incremental_relay_fee_rate=policy.incremental_relay_fee_rate,
        max_standard_tx_size=policy.max_standard_tx_size,
    )


@dataclass(frozen=True)
class FoundTx:
    tx: Transaction
    spent: tuple[Coin, ...] | None  # coins its inputs spent (empty for a coinbase), None: unknown
    entry: BlockIndexEntry | None  # its block on the active chain, None if in the mempool
    position: int
    replaced_by: bytes | None = None  # not in the mempool: recently replaced by this txid


class Views:
    """Queries over one chainstate and one mempool."""

    def __init__(self, chainstate: Chainstate, mempool: Mempool) -> None:
        self.chain = chainstate
        self.mempool = mempool
        self.params = chainstate.params
        self.policy = policy_model(mempool.policy)
        """``/info``'s ``policy``: the mempool's policy is fixed at start-up, so it is read once
        here and the answer is safe to build on any thread."""

    # --- helpers --------------------------------------------------------------------------------

    def address(self, pubkey_hash: bytes) -> str:
        return encode_address(pubkey_hash, self.params)

    def entry_or_404(self, block_hash: bytes) -> BlockIndexEntry:
        entry = self.chain.get_entry(block_hash)
        if entry is None or not entry.have_data:
            raise NotFoundError(f"block {display(block_hash)} not found")
        return entry

    def _block(self, entry: BlockIndexEntry) -> Block:
        block = self.chain.get_block(entry.hash)
        if block is None:
            raise NotFoundError(f"block {display(entry.hash)} has no stored body")
        return block

    def confirmations(self, entry: BlockIndexEntry) -> int:
        if not self.chain.in_active_chain(entry):
            return 0
        return self.chain.height - entry.height + 1

    def find_tx(self, txid: bytes) -> FoundTx:
        pooled = self.mempool.get(txid)
        if pooled is not None:
            return FoundTx(pooled.tx, pooled.spent, None, -1)
        return self._confirmed(txid)

    def _confirmed(self, txid: bytes) -> FoundTx:
        """An active-chain transaction: one read of its own record, never its block."""
        found = self.chain.get_confirmed_tx(txid)
        if found is None:
            replaced = self.mempool.replaced_by(txid)
            if replaced is not None:
                return FoundTx(replaced.entry.tx, replaced.entry.spent, None, -1, replaced.by)
            raise NotFoundError(f"transaction {display(txid)} not found")
        return FoundTx(found.tx, found.spent, found.entry, found.position)

    # --- chain ----------------------------------------------------------------------------------

    def info(self, peers: int, synced: bool, version: str) -> m.Info:
        """``/info`` from the chainstate and mempool themselves (on the state thread)."""
        return self.info_of(
            NodeStatus(self.chain.tip, len(self.mempool), self.mempool.total_bytes),
            peers,
            synced,
            version,
        )

    def info_of(self, status: NodeStatus, peers: int, synced: bool, version: str) -> m.Info:
        """``/info`` from a published status: safe on any thread (touches nothing mutable)."""
        tip = status.tip
        return m.Info(
            network=self.params.name,
            height=tip.height,
            best_hash=display(tip.hash),
            chainwork=f"{tip.chainwork:064x}",
            peers=peers,
            mempool=m.MempoolCounts(count=status.mempool_count, bytes=status.mempool_bytes),
            synced=synced,
            version=version,
            policy=self.policy,
        )

    def _summary(self, entry: BlockIndexEntry) -> BlockSummary:
        """Count, size and fees: the chainstate's record for an active-chain block; a block off
        it is decoded (it has no undo data, so its fees show as 0)."""
        summary = self.chain.block_summary(entry.hash)
        if summary is None:
            block = self._block(entry)
            summary = BlockSummary(len(block.txs), block.size(), 0)
        return summary

    def block_json(self, entry: BlockIndexEntry) -> m.Block:
        summary = self._summary(entry)
        in_best = self.chain.in_active_chain(entry)
        next_hash = self.chain.hash_at_height(entry.height + 1) if in_best else None
        h = entry.header
        return m.Block(
            hash=display(entry.hash),
            height=entry.height,
            version=h.version,
            prev_hash=display(h.prev_hash),
            next_hash=display(next_hash) if next_hash else None,
            merkle_root=display(h.merkle_root),
            time=h.time,
            median_time=self.chain.median_time_past(entry),
            bits=h.bits,
            nonce=h.nonce,
            tx_count=summary.tx_count,
            size=summary.size,
            total_fees=summary.total_fees,
            confirmations=self.confirmations(entry),
            in_best_chain=in_best,
        )

    def block(self, block_hash: bytes) -> m.Block:
        return self.block_json(self.entry_or_404(block_hash))

    def blocks(self, start_height: int | None) -> list[m.Block]:
        top = self.chain.height if start_height is None else min(start_height, self.chain.height)
        out = []
        for height in range(top, max(-1, top - BLOCKS_PAGE), -1):
            block_hash = self.chain.hash_at_height(height)
            if block_hash is not None:
                out.append(self.block_json(self.entry_or_404(block_hash)))
        return out

    def block_txids(self, block_hash: bytes) -> list[str]:
        entry = self.entry_or_404(block_hash)
        if self.chain.in_active_chain(entry):
            return [display(t) for t in self.chain.block_txids(entry)]
        return [display(t) for t in self._block(entry).txids()]

    def block_txs(self, block_hash: bytes, start_index: int) -> list[m.Transaction]:
        entry = self.entry_or_404(block_hash)
        tx_count = self._summary(entry).tx_count
        if start_index % TXS_PAGE or (start_index and start_index >= tx_count):
            raise NotFoundError(f"no page at start_index {start_index}")
        if not self.chain.in_active_chain(entry):
            # A block off the best chain has no undo data: show each transaction as this node
            # knows it now (confirmed elsewhere, in the mempool), or with unknown inputs.
            block = self._block(entry)
            page = range(start_index, min(tx_count, start_index + TXS_PAGE))
            return [self._detached_tx(block.txs[pos]) for pos in page]
        txids = islice(self.chain.block_txids(entry, start_index), TXS_PAGE)
        return [self.tx_json(self._confirmed(txid)) for txid in txids]

    def _detached_tx(self, tx: Transaction) -> m.Transaction:
        try:
            return self.tx_json(self.find_tx(tx.txid()))
        except NotFoundError:
            return self.tx_json(FoundTx(tx, () if tx.is_coinbase() else None, None, -1))

    def block_raw(self, block_hash: bytes) -> bytes:
        raw = self.chain.get_block_bytes(self.entry_or_404(block_hash).hash)
        if raw is None:
            raise NotFoundError("block body not stored")
        return raw

    def hash_at_height(self, height: int) -> str:
        block_hash = self.chain.hash_at_height(height)
        if block_hash is None:
            raise NotFoundError(f"no block at height {height}")
        return display(block_hash)

    # --- transactions ---------------------------------------------------------------------------

    def tx_status(self, found: FoundTx) -> m.TxStatus:
        if found.replaced_by is not None:
            # The direct replacer only: a client follows the chain if that was replaced too.
            return m.TxReplaced(confirmed=False, replaced_by=display(found.replaced_by))
        if found.entry is None:
            return m.TxPending(
                confirmed=False,
                block_hash=None,
                block_height=None,
                block_time=None,
                confirmations=0,
            )
        return m.TxConfirmed(
            confirmed=True,
            block_hash=display(found.entry.hash),
            block_height=found.entry.height,
            block_time=found.entry.header.time,
            confirmations=self.confirmations(found.entry),
        )

    def is_spent(self, outpoint: OutPoint) -> bool:
        return outpoint in self.mempool.spenders or self.chain.get_spender(outpoint) is not None

    def tx_json(self, found: FoundTx) -> m.Transaction:
        tx = found.tx
        txid = tx.txid()
        fee: int | None
        if tx.is_coinbase():
            inputs: list[m.TxInput] = [
                m.TxInput(
                    txid=display(tx.inputs[0].prevout.txid),
                    index=tx.inputs[0].prevout.index,
                    address=None,
                    amount=0,
                    coinbase=True,
                )
            ]
            fee = 0
        elif found.spent is None:
            inputs = [
                m.TxInput(
                    txid=display(i.prevout.txid),
                    index=i.prevout.index,
                    address=None,
                    amount=None,
                    coinbase=False,
                )
                for i in tx.inputs
            ]
            fee = None
        else:
            inputs = [
                m.TxInput(
                    txid=display(i.prevout.txid),
                    index=i.prevout.index,
                    address=self.address(c.output.pubkey_hash),
                    amount=c.output.amount,
                    coinbase=False,
                )
                for i, c in zip(tx.inputs, found.spent, strict=True)
            ]
            fee = tx_fee(tx, found.spent)
        outputs = [
            m.TxOutput(
                address=self.address(o.pubkey_hash),
                amount=o.amount,
                spent=self.is_spent(OutPoint(txid, n)),
            )
            for n, o in enumerate(tx.outputs)
        ]
        return m.Transaction(
            txid=display(txid),
            wtxid=display(tx.wtxid()),
            version=tx.version,
            locktime=tx.locktime,
            size=tx.size(),
            fee=fee,
            inputs=inputs,
            outputs=outputs,
            status=self.tx_status(found),
        )

    def tx(self, txid: bytes) -> m.Transaction:
        return self.tx_json(self.find_tx(txid))

    def tx_raw(self, txid: bytes) -> bytes:
        return self.find_tx(txid).tx.serialize()

    def tx_status_of(self, txid: bytes) -> m.TxStatus:
        return self.tx_status(self.find_tx(txid))

    def merkle_proof(self, txid: bytes) -> m.MerkleProof:
        found = self.find_tx(txid)
        if found.entry is None:
            raise NotFoundError("the transaction is not in a block yet")
        # The header's root is over the wtxids (SPEC 2.4): the proof's leaf is the wtxid. They
        # come from the block's ``j`` records (64 bytes a transaction), not from decoding it.
        wtxids = self.chain.block_wtxids(found.entry) or self._block(found.entry).wtxids()
        branch = merkle_branch(wtxids, found.position)
        return m.MerkleProof(
            block_height=found.entry.height,
            block_hash=display(found.entry.hash),
            merkle=[display(h) for h in branch],
            pos=found.position,
        )

    def outspends(self, txid: bytes) -> list[m.Outspend]:
        found = self.find_tx(txid)
        out: list[m.Outspend] = []
        for n in range(len(found.tx.outputs)):
            outpoint = OutPoint(txid, n)
            spender = self.mempool.spenders.get(outpoint)
            if spender is not None:
                entry = self.mempool.get(spender)
                vin = (
                    next(i for i, t in enumerate(entry.tx.inputs) if t.prevout == outpoint)
                    if entry
                    else 0
                )
                out.append(m.SpentBy(spent=True, txid=display(spender), vin=vin, confirmed=False))
                continue
            chain_spender = self.chain.get_spender(outpoint)
            if chain_spender is None:
                out.append(m.Unspent(spent=False))
            else:
                out.append(
                    m.SpentBy(
                        spent=True,
                        txid=display(chain_spender[0]),
                        vin=chain_spender[1],
                        confirmed=True,
                    )
                )
        return out

    # --- addresses ------------------------------------------------------------------------------

    def _immature(self, pubkey_hash: bytes) -> int:
        """Unspent coinbase outputs to the address that are not mature yet."""
        return self.chain.immature_amount(pubkey_hash)

    def address_summary(self, text: str, pubkey_hash: bytes) -> m.AddressSummary:
        stats = self.chain.address_stats(pubkey_hash)
        funded = spent = 0
        txids = self.mempool.by_address.get(pubkey_hash, set())
        for txid in txids:
            entry = self.mempool.entries[txid]
            funded += sum(o.amount for o in entry.tx.outputs if o.pubkey_hash == pubkey_hash)
            spent += sum(
                c.output.amount for c in entry.spent if c.output.pubkey_hash == pubkey_hash
            )
        immature = self._immature(pubkey_hash)
        return m.AddressSummary(
            address=text,
            chain_stats=m.AddressStats(
                funded_sum=stats.funded_sum,
                spent_sum=stats.spent_sum,
                tx_count=stats.tx_count,
            ),
            mempool_stats=m.AddressStats(funded_sum=funded, spent_sum=spent, tx_count=len(txids)),
            balance=m.Balance(
                confirmed=stats.funded_sum - stats.spent_sum - immature,
                unconfirmed=funded - spent,
                immature=immature,
            ),
        )

    def _mempool_txids_for(self, pubkey_hash: bytes) -> list[bytes]:
        """Newest first (acceptance order reversed)."""
        txids = self.mempool.by_address.get(pubkey_hash, set())
        entries = self.mempool.entries
        return sorted(txids, key=lambda t: entries[t].seq, reverse=True)

    def address_txs(self, pubkey_hash: bytes, after_txid: bytes | None) -> list[m.Transaction]:
        """Newest first: unconfirmed, then confirmed; 25 a page, after ``after_txid``."""
        pooled = self._mempool_txids_for(pubkey_hash)
        before: tuple[int, int] | None = None
        if after_txid is not None:
            if after_txid in pooled:
                pooled = pooled[pooled.index(after_txid) + 1 :]
            else:
                located = self.chain.get_tx_location(after_txid)
                if located is None or not self.chain.address_has_tx_at(
                    pubkey_hash, located[0].height, located[1]
                ):
                    raise NotFoundError("after_txid is not a transaction of this address")
                before = (located[0].height, located[1])
                pooled = []
        result = [self.tx(t) for t in pooled[:TXS_PAGE]]
        confirmed: Iterator[tuple[bytes, int, int]] = self.chain.address_history(
            pubkey_hash, before
        )
        for txid, _, _ in islice(confirmed, TXS_PAGE - len(result)):
            result.append(self.tx(txid))
        return result

    def address_utxos(self, pubkey_hash: bytes, after: OutPoint | None = None) -> list[m.Utxo]:
        """Confirmed unspent outputs in (txid, index) order, then unconfirmed ones in mempool
        order; ``UTXO_PAGE`` at most, strictly after the cursor ``after``. A cursor that is one
        of the address's unconfirmed outputs continues among those; any other seeks among the
        confirmed ones (it need not exist: the page starts where it would be)."""
        tip = self.chain.height
        out: list[m.Utxo] = []
        pooled = [
            (OutPoint(txid, n), o)
            for txid in self._mempool_txids_for(pubkey_hash)
            for n, o in enumerate(self.mempool.entries[txid].tx.outputs)
            if o.pubkey_hash == pubkey_hash and OutPoint(txid, n) not in self.mempool.spenders
        ]
        unconfirmed_cursor = after is not None and any(p == after for p, _ in pooled)
        confirmed = iter(()) if unconfirmed_cursor else self.chain.address_utxos(pubkey_hash, after)
        for outpoint, coin in confirmed:
            if len(out) >= UTXO_PAGE:
                return out
            if outpoint in self.mempool.spenders:
                continue
            out.append(utxo_row(outpoint, coin.output.amount, coin.height, coin.is_coinbase, tip))
        if unconfirmed_cursor and after is not None:
            pooled = pooled[[p for p, _ in pooled].index(after) + 1 :]
        for outpoint, o in pooled[: UTXO_PAGE - len(out)]:
            out.append(utxo_row(outpoint, o.amount, None, False, tip))
        return out

    # --- mempool --------------------------------------------------------------------------------

    def mempool_summary(self) -> m.MempoolSummary:
        buckets: dict[int, int] = {}
        for entry in self.mempool.entries.values():
            rate = int(entry.fee_rate)
            bucket = 1 << max(0, rate.bit_length() - 1) if rate else 0
            buckets[bucket] = buckets.get(bucket, 0) + entry.size
        return m.MempoolSummary(
            count=len(self.mempool),
            bytes=self.mempool.total_bytes,
            total_fee=self.mempool.total_fee,
            fee_histogram=[[rate, size] for rate, size in sorted(buckets.items(), reverse=True)],
        )

    def mempool_txids(self, after: bytes | None = None) -> list[str]:
        """Txids in the mempool's own order (acceptance order, but that a transaction put back
        after a refused replacement moves to the end), ``MEMPOOL_TXIDS_PAGE`` at most, strictly
        after ``after`` (``NotFoundError`` if that txid is not in the mempool). Stable while the
        mempool does not change, and no sort: a page costs what it returns."""
        entries: Iterator[bytes] = iter(self.mempool.entries)
        if after is not None:
            if after not in self.mempool.entries:
                raise NotFoundError("after_txid is not in the mempool")
            entries = dropwhile(lambda t: t != after, entries)
            next(entries)
        return [display(t) for t in islice(entries, MEMPOOL_TXIDS_PAGE)]

    def mempool_recent(self) -> list[m.MempoolRecent]:
        recent = heapq.nlargest(MEMPOOL_RECENT, self.mempool.entries.values(), key=lambda e: e.seq)
        return [
            m.MempoolRecent(txid=display(e.txid), fee=e.fee, size=e.size, value=e.tx.total_out())
            for e in recent
        ]

    # --- other ----------------------------------------------------------------------------------

    def search(self, query: str) -> m.SearchResult:
        """What ``query`` is (a height, block hash, txid, address or account key) and where it
        leads."""
        q = query.strip()
        if q.isascii() and q.isdigit() and len(q) <= 10 and int(q) <= self.chain.height:
            block_hash = self.chain.hash_at_height(int(q))
            if block_hash is not None:
                return m.FoundBlock(id=display(block_hash), height=int(q))
        if len(q) == 64:
            try:
                h = bytes.fromhex(q)[::-1]
            except ValueError:
                h = b""
            if h:
                entry = self.chain.get_entry(h)
                if entry is not None and entry.have_data:
                    return m.FoundBlock(id=q.lower(), height=entry.height)
                if (
                    h in self.mempool
                    or self.chain.get_tx_location(h) is not None
                    or self.mempool.replaced_by(h) is not None
                ):
                    return m.FoundTx(id=q.lower())
        try:
            decode_address(q, self.params)
        except AddressError:
            pass
        else:
            return m.FoundAddress(id=q)
        try:
            decode_xpub(q, self.params)
        except ExtendedKeyError:
            pass
        else:
            return m.FoundXpub(id=q)
        raise NotFoundError(f"nothing known as {query!r}")

    def utxo_set_info(self) -> m.UtxoSetInfo:
        info = self.chain.utxo_set_info()
        return m.UtxoSetInfo(
            height=info.height,
            best_hash=display(info.best_hash),
            count=info.count,
            total_amount=info.total_amount,
            hash=info.hash.hex(),
        )
