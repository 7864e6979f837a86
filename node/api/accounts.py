"""Account queries: a BIP32 account's addresses, totals, history and coins in one request each.

Job: answer SPEC 3.5's ``/xpub/{xpub}``, ``/xpub/{xpub}/txs`` and ``/xpub/{xpub}/utxo`` for an
account-level extended public key (``m/44'/<coin type>'/0'``, as ``tally-wallet info`` shows it):
the receive (``0/i``) and change (``1/i``) addresses are derived and scanned with BIP44's gap limit
of ``GAP_LIMIT``: a chain's scan stops after that many unused addresses in a row, so an address
past the 20th is found once an earlier one within reach is used. What a watch-only wallet, an
accounting tool or a merchant needs, without one request per address (esplora#27).

Costs and bounds: deriving a key costs ~30 us (libsecp256k1 through ``bip32``); derived keys are
cached per account (``CACHED_ACCOUNTS`` accounts, least recently used dropped), so a repeated
query costs only its index reads. A chain is scanned up to ``MAX_SCANNED`` addresses; an account
with more used addresses is refused (``AccountTooLargeError``, a 400) rather than read without
bound. Totals sum the addresses' (a transaction touching two addresses of the account counts
once in ``tx_count``); history merges the addresses' index entries newest first, reading only a
page; unspent outputs merge in (txid, index) order, a page at a time.

Threading: like ``Views`` (which it reads through), every method runs on the node's state thread.
Left to others: parsing the key (``consensus.extkey``), HTTP shapes of errors (``node.api.app``).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import msgspec
from bip32 import BIP32  # type: ignore[import-untyped]

from client import models as m
from client.models import GAP_LIMIT
from consensus import ExtendedKeyError, ExtendedPublicKey, OutPoint, hash160
from node.api.views import TXS_PAGE, UTXO_PAGE, NotFoundError, Views, utxo_row

MAX_SCANNED = 1000
"""Addresses scanned on one chain at most; an account using more is refused."""
CACHED_ACCOUNTS = 32
CHAINS = (0, 1)
"""BIP44's receive (external) and change (internal) chains."""


class AccountTooLargeError(ValueError):
    """The account uses more addresses than one request may scan."""


@dataclass(frozen=True)
class AccountAddress:
    chain: int
    index: int
    pubkey_hash: bytes

    @property
    def path(self) -> str:
        return f"{self.chain}/{self.index}"


class _Keys:
    """The derived public key hashes of one account's two chains, grown on demand."""

    def __init__(self, xpub: ExtendedPublicKey) -> None:
        try:
            account = BIP32(chaincode=xpub.chain_code, pubkey=xpub.pubkey)
            self._chains = []
            for chain in CHAINS:
                chain_code, pubkey = account.get_extended_pubkey_from_path([chain])
                self._chains.append(BIP32(chaincode=chain_code, pubkey=pubkey))
        except Exception as err:  # the bip32 package raises several types for a bad point
            raise ExtendedKeyError("bad-key", f"not a point on the curve: {err}") from None
        self._hashes: list[list[bytes]] = [[], []]

    def hash_at(self, chain: int, index: int) -> bytes:
        known = self._hashes[chain]
        while len(known) <= index:
            known.append(hash160(bytes(self._chains[chain].get_pubkey_from_path([len(known)]))))
        return known[index]


class Accounts:
    """Account queries over a ``Views`` (its chainstate and mempool)."""

    def __init__(self, views: Views) -> None:
        self.views = views
        self._cache: OrderedDict[ExtendedPublicKey, _Keys] = OrderedDict()

    # --- scanning -------------------------------------------------------------------------------

    def _keys(self, xpub: ExtendedPublicKey) -> _Keys:
        keys = self._cache.get(xpub)
        if keys is None:
            keys = self._cache[xpub] = _Keys(xpub)
            if len(self._cache) > CACHED_ACCOUNTS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(xpub)
        return keys

    def _used(self, pubkey_hash: bytes) -> bool:
        if pubkey_hash in self.views.mempool.by_address:
            return True
        return self.views.chain.address_stats(pubkey_hash).tx_count > 0

    def scan(self, xpub: ExtendedPublicKey) -> tuple[list[AccountAddress], dict[int, int]]:
        """The used addresses of both chains, and each chain's first unused index after them."""
        keys = self._keys(xpub)
        used: list[AccountAddress] = []
        next_unused: dict[int, int] = {}
        for chain in CHAINS:
            index, last_used = 0, -1
            while index - last_used <= GAP_LIMIT:
                if index >= MAX_SCANNED:
                    raise AccountTooLargeError(
                        f"the account uses more than {MAX_SCANNED} addresses on chain {chain}; "
                        "query its addresses one by one"
                    )
                pubkey_hash = keys.hash_at(chain, index)
                if self._used(pubkey_hash):
                    used.append(AccountAddress(chain, index, pubkey_hash))
                    last_used = index
                index += 1
            next_unused[chain] = last_used + 1
        return used, next_unused

    # --- queries --------------------------------------------------------------------------------

    def summary(self, text: str, xpub: ExtendedPublicKey) -> m.AccountSummary:
        used, next_unused = self.scan(xpub)
        views = self.views
        chain_sums = [0, 0]  # funded, spent
        pool_sums = [0, 0]
        balance = [0, 0, 0]  # confirmed, unconfirmed, immature
        addresses = []
        confirmed_txids: set[bytes] = set()
        pooled_txids: set[bytes] = set()
        for a in used:
            one = views.address_summary(views.address(a.pubkey_hash), a.pubkey_hash)
            for sums, stats in ((chain_sums, one.chain_stats), (pool_sums, one.mempool_stats)):
                sums[0] += stats.funded_sum
                sums[1] += stats.spent_sum
            balance[0] += one.balance.confirmed
            balance[1] += one.balance.unconfirmed
            balance[2] += one.balance.immature
            confirmed_txids.update(t for t, _, _ in views.chain.address_history(a.pubkey_hash))
            pooled_txids.update(views.mempool.by_address.get(a.pubkey_hash, ()))
            addresses.append(
                m.AccountAddress(
                    address=one.address,
                    path=a.path,
                    tx_count=one.chain_stats.tx_count + one.mempool_stats.tx_count,
                    balance=one.balance.confirmed + one.balance.unconfirmed,
                )
            )
        return m.AccountSummary(
            xpub=text,
            chain_stats=m.AddressStats(chain_sums[0], chain_sums[1], len(confirmed_txids)),
            mempool_stats=m.AddressStats(pool_sums[0], pool_sums[1], len(pooled_txids)),
            balance=m.Balance(balance[0], balance[1], balance[2]),
            addresses=addresses,
            next_receive_index=next_unused[0],
            next_change_index=next_unused[1],
            gap_limit=GAP_LIMIT,
        )

    def _pooled_newest_first(self, used: list[AccountAddress]) -> list[bytes]:
        mine: set[bytes] = set()
        for a in used:
            mine.update(self.views.mempool.by_address.get(a.pubkey_hash, ()))
        entries = self.views.mempool.entries
        return sorted(mine, key=lambda t: entries[t].seq, reverse=True)

    def txs(self, xpub: ExtendedPublicKey, after_txid: bytes | None) -> list[m.Transaction]:
        """Newest first: unconfirmed, then confirmed; ``TXS_PAGE`` a page after ``after_txid``."""
        used, _ = self.scan(xpub)
        chain = self.views.chain
        pooled = self._pooled_newest_first(used)
        before: tuple[int, int] | None = None
        if after_txid is not None:
            if after_txid in pooled:
                pooled = pooled[pooled.index(after_txid) + 1 :]
            else:
                located = chain.get_tx_location(after_txid)
                if located is None or not any(
                    chain.address_has_tx_at(a.pubkey_hash, located[0].height, located[1])
                    for a in used
                ):
                    raise NotFoundError("after_txid is not a transaction of this account")
                before = (located[0].height, located[1])
                pooled = []
        page = pooled[:TXS_PAGE]
        histories = [chain.address_history(a.pubkey_hash, before) for a in used]
        merged = heapq.merge(*histories, key=lambda item: (item[1], item[2]), reverse=True)
        last: tuple[int, int] | None = None
        for txid, height, position in merged:
            if len(page) >= TXS_PAGE:
                break
            if (height, position) != last:  # one transaction touching several addresses
                page.append(txid)
                last = (height, position)
        return [self.views.tx(t) for t in page]

    def utxos(self, xpub: ExtendedPublicKey, after: OutPoint | None) -> list[m.AccountUtxo]:
        """Confirmed outputs in (txid, index) order, then unconfirmed ones, each with its address
        and derivation path; ``UTXO_PAGE`` a page after the cursor ``after``."""
        used, _ = self.scan(xpub)
        views = self.views
        paths = {a.pubkey_hash: a.path for a in used}
        pooled = [
            (OutPoint(txid, n), o)
            for txid in self._pooled_newest_first(used)[::-1]
            for n, o in enumerate(views.mempool.entries[txid].tx.outputs)
            if o.pubkey_hash in paths and OutPoint(txid, n) not in views.mempool.spenders
        ]
        unconfirmed_cursor = after is not None and any(p == after for p, _ in pooled)
        tip = views.chain.height
        out: list[m.AccountUtxo] = []

        def where(row: m.Utxo, pubkey_hash: bytes) -> m.AccountUtxo:
            """The address's row with the address and its derivation path."""
            return m.AccountUtxo(
                **msgspec.structs.asdict(row),
                address=views.address(pubkey_hash),
                path=paths[pubkey_hash],
            )

        if not unconfirmed_cursor:

            def keyed(pubkey_hash: bytes) -> Iterator[tuple[bytes, int, Any]]:
                for outpoint, coin in views.chain.address_utxos(pubkey_hash, after):
                    yield outpoint.txid, outpoint.index, coin

            merged = heapq.merge(*(keyed(a.pubkey_hash) for a in used))
            for txid, index, coin in merged:
                if len(out) >= UTXO_PAGE:
                    return out
                if OutPoint(txid, index) in views.mempool.spenders:
                    continue
                row = utxo_row(
                    OutPoint(txid, index), coin.output.amount, coin.height, coin.is_coinbase, tip
                )
                out.append(where(row, coin.output.pubkey_hash))
        elif after is not None:
            pooled = pooled[[p for p, _ in pooled].index(after) + 1 :]
        for outpoint, o in islice(pooled, UTXO_PAGE - len(out)):
            out.append(where(utxo_row(outpoint, o.amount, None, False, tip), o.pubkey_hash))
        return out
