"""Block templates: which mempool transactions go into the next block, and the block around them.

Selection is Bitcoin Core's ancestor-package algorithm: repeatedly take the transaction whose
package (itself plus its not-yet-selected in-mempool ancestors) has the highest fee rate, and add
the whole package, parents first. A high-fee child thereby pulls in its low-fee parent ("child
pays for parent"). Packages that no longer fit in the size budget are skipped. Scores change as
ancestors get selected; a heap with lazy re-scoring keeps the order right without rescoring the
whole pool after each pick.

The coinbase pays subsidy plus the selected fees to the payout address and carries the height and
an extra nonce. The header gets the parent's hash, the required bits, and a time that is the
later of ``now`` and median time past + 1. The nonce is left at 0: the search is ``pow.py``'s.
``build_template`` builds on the tip; ``build_block_on``, which it uses, on any parent whose
ancestors' times it is given (the devnet's scripted reorg, ``node.toolkit``).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from consensus import (
    MAX_BLOCK_SIZE,
    NULL_OUTPOINT,
    Block,
    BlockHeader,
    NetworkParams,
    Transaction,
    TxIn,
    TxOut,
    bits_to_target,
    block_merkle_root,
    block_subsidy,
    median_time_past_at,
    required_bits,
)
from consensus.policy import MAX_STANDARD_TX_SIZE
from consensus.pow import AncestorTime
from node.chainstate import Chainstate
from node.mempool import Mempool, MempoolEntry

BLOCK_VERSION = 1
COINBASE_RESERVE = 1_000
"""Bytes kept free for the header, the coinbase and the block's own encoding overhead."""
if MAX_STANDARD_TX_SIZE > MAX_BLOCK_SIZE - COINBASE_RESERVE:  # pragma: no cover - constants
    raise RuntimeError("every standard transaction must fit in a template beside the coinbase")
COINBASE_TAG = b"/tally/"


@dataclass(frozen=True)
class BlockTemplate:
    """A block ready for the proof-of-work search (nonce 0)."""

    block: Block
    height: int
    fees: int
    target: int


def select_transactions(mempool: Mempool, max_bytes: int) -> list[MempoolEntry]:
    """Mempool entries for a block of at most ``max_bytes`` of transactions, in a valid order."""
    selected: set[bytes] = set()
    order: list[MempoolEntry] = []
    used = 0

    def package(txid: bytes) -> list[bytes]:
        return [t for t in mempool.ancestors(txid) if t not in selected] + [txid]

    def score(txid: bytes) -> float:
        members = package(txid)
        return sum(mempool.entries[t].fee for t in members) / sum(
            mempool.entries[t].size for t in members
        )

    position = {txid: n for n, txid in enumerate(mempool.entries)}
    heap = [(-score(t), position[t], t) for t in mempool.entries]
    heapq.heapify(heap)
    while heap:
        neg_score, pos, txid = heapq.heappop(heap)
        if txid in selected:
            continue
        current = score(txid)
        if current != -neg_score:
            heapq.heappush(heap, (-current, pos, txid))  # stale: its ancestors changed
            continue
        members = sorted(package(txid), key=position.__getitem__)
        size = sum(mempool.entries[t].size for t in members)
        if used + size > max_bytes:
            continue
        used += size
        for t in members:
            selected.add(t)
            order.append(mempool.entries[t])
        for t in members:
            for d in mempool.descendants(t):
                if d not in selected:
                    heapq.heappush(heap, (-score(d), position[d], d))
    return order


def make_coinbase(height: int, pubkey_hash: bytes, amount: int, extra_nonce: int) -> Transaction:
    data = height.to_bytes(4, "little") + extra_nonce.to_bytes(8, "little") + COINBASE_TAG
    return Transaction(1, (TxIn(NULL_OUTPOINT, b"", data),), (TxOut(amount, pubkey_hash),), 0)


def build_template(
    chainstate: Chainstate,
    mempool: Mempool | None,
    payout_pubkey_hash: bytes,
    *,
    now: int,
    extra_nonce: int = 0,
    max_size: int = MAX_BLOCK_SIZE,
) -> BlockTemplate:
    """The next block on ``chainstate``'s tip, filled from ``mempool`` (if given)."""
    tip = chainstate.tip
    entries = select_transactions(mempool, max_size - COINBASE_RESERVE) if mempool else []
    return build_block_on(
        chainstate.params,
        tip.hash,
        tip.height + 1,
        tip.header.bits,
        lambda h: chainstate.ancestor(tip, h).header.time,
        payout_pubkey_hash,
        now=now,
        extra_nonce=extra_nonce,
        entries=entries,
    )


def build_block_on(
    params: NetworkParams,
    parent_hash: bytes,
    height: int,
    parent_bits: int,
    time_at: AncestorTime,
    payout_pubkey_hash: bytes,
    *,
    now: int,
    extra_nonce: int = 0,
    entries: Sequence[MempoolEntry] = (),
) -> BlockTemplate:
    """A block at ``height`` on ``parent_hash``, which need not be the tip (a scripted reorg builds
    a side branch on a block back in the chain): the ``bits`` the rules require there, a time
    above the median time past of the ancestors (``time_at(h)``: the time of the ancestor at
    height ``h``, for every ``h < height`` the rules ask about), and a coinbase paying the
    subsidy and the ``entries``' fees (selected already, in a valid order)."""
    fees = sum(e.fee for e in entries)
    coinbase = make_coinbase(
        height, payout_pubkey_hash, block_subsidy(height, params) + fees, extra_nonce
    )
    txs = (coinbase, *(e.tx for e in entries))
    root, _ = block_merkle_root(txs)
    bits = required_bits(params, height, parent_bits, time_at)
    time = max(now, median_time_past_at(height, time_at) + 1)
    header = BlockHeader(BLOCK_VERSION, parent_hash, root, time, bits, 0)
    return BlockTemplate(Block(header, txs), height, fees, bits_to_target(bits))
