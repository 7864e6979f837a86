"""The worker of ``test_chainstate_crash.py``, and the block sequence it processes.

``build_sequence(length, seed)`` makes, deterministically, a list of regtest blocks in the order a
node receives them: a 101-block prefix whose last block splits a coinbase into coins of the
wallet keys, then branches that keep overtaking one another (a rival forks a few blocks below the
best tip and grows until it has more work), every block carrying transactions between the wallet
keys, so the branches double-spend each other's coins. With it comes the reference
``(height, best_hash, count, total_amount, hash)`` of the UTXO set with each block as the tip,
computed from ``ChainBuilder``'s coins views and undo data, independently of the chainstate.

Run as a script, ``python crash_worker.py DB_PATH BLOCKS_FILE`` opens a ``Chainstate`` on a
``LevelDBStore`` at ``DB_PATH`` with ``sync=True`` and processes the blocks of ``BLOCKS_FILE``
(see ``write_blocks``) in order, then exits. It prints the index of each block it processed
(not those already stored), one a line, so the parent can choose when to kill it. A block
already stored raises ``duplicate`` and is skipped, so a killed worker started again resumes
where the database is.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from consensus import (
    Block,
    Coin,
    MemoryCoinsView,
    OutPoint,
    Transaction,
    TxOut,
    ValidationError,
    disconnect_block,
)
from consensus import errors as codes
from node.chainstate import Chainstate, UtxoStats
from node.storage import LevelDBStore
from tests.helpers import REGTEST, ChainBuilder, Key, key, spend

FAR_FUTURE = 2**31
SEED = 20261122
WALLET = [key(n) for n in range(1, 9)]
OWNER = {k.pubkey_hash: k for k in WALLET}
FEE = 1000
MAX_FORK_DEPTH = 6

Reference = tuple[int, bytes, int, int, bytes]
"""``(height, best_hash, count, total_amount, hash)``: the fields of ``UtxoSetInfo``."""


@dataclass
class Branch:
    """A chain being grown, with the wallet's spendable coins on it."""

    builder: ChainBuilder
    wallet: dict[OutPoint, TxOut] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.builder.height


@dataclass
class BlockSequence:
    blocks: list[Block] = field(default_factory=list)
    stats: dict[bytes, UtxoStats] = field(default_factory=dict)
    reference: dict[bytes, Reference] = field(default_factory=dict)

    def record(self, block: Block, height: int, stats: UtxoStats) -> None:
        block_hash = block.hash()
        self.blocks.append(block)
        self.stats[block_hash] = stats
        self.reference[block_hash] = (
            height,
            block_hash,
            stats.count,
            stats.total_amount,
            stats.hash(),
        )


def _apply(stats: UtxoStats, block: Block, height: int, spent: list[tuple[OutPoint, Coin]]) -> None:
    for outpoint, coin in spent:
        stats.remove(outpoint, coin)
    for tx in block.txs:
        txid = tx.txid()
        for index, out in enumerate(tx.outputs):
            stats.add(OutPoint(txid, index), Coin(out, height, tx.is_coinbase()))


def _add(seq: BlockSequence, branch: Branch, block: Block) -> None:
    """Connect ``block`` on ``branch``, update its wallet and record the reference."""
    undo = branch.builder.add(block)
    height = branch.height
    spent = [
        (txin.prevout, coin)
        for tx, coins in zip(block.txs[1:], undo.spent, strict=True)
        for txin, coin in zip(tx.inputs, coins, strict=True)
    ]
    for tx in block.txs[1:]:  # outputs first: a coin may be created and spent in one block
        txid = tx.txid()
        for index, out in enumerate(tx.outputs):
            if out.pubkey_hash in OWNER:
                branch.wallet[OutPoint(txid, index)] = out
    for outpoint, _ in spent:
        branch.wallet.pop(outpoint, None)
    stats = seq.stats[block.header.prev_hash].copy()
    _apply(stats, block, height, spent)
    seq.record(block, height, stats)


def _transactions(rng: random.Random, branch: Branch) -> list[Transaction]:
    """Up to three wallet transactions for the next block of ``branch`` (1 or 2 in, 1 or 2 out)."""
    txs: list[Transaction] = []
    available = dict(branch.wallet)
    for _ in range(rng.randint(0, 3)):
        if not available:
            break
        picked = rng.sample(sorted(available, key=lambda op: (op.txid, op.index)), 1)
        if len(available) > 8 and rng.random() < 0.5:
            picked = rng.sample(sorted(available, key=lambda op: (op.txid, op.index)), 2)
        coins = [(op, available[op], OWNER[available.pop(op).pubkey_hash]) for op in picked]
        total = sum(out.amount for _, out, _ in coins) - FEE
        if len(coins) == 1 and total > 4 * FEE:
            half = total // 2
            outputs = [
                TxOut(half, rng.choice(WALLET).pubkey_hash),
                TxOut(total - half, rng.choice(WALLET).pubkey_hash),
            ]
        else:
            outputs = [TxOut(total, rng.choice(WALLET).pubkey_hash)]
        tx = spend(coins, outputs)
        txs.append(tx)
        for index, out in enumerate(outputs):  # spendable later in the same block
            available[OutPoint(tx.txid(), index)] = out
    return txs


def _grow(rng: random.Random, seq: BlockSequence, branch: Branch) -> None:
    txs = _transactions(rng, branch)
    _add(seq, branch, branch.builder.next_block(txs, fees=FEE * len(txs)))


def _fork(src: Branch, height: int, miner: Key) -> Branch:
    """A new branch equal to ``src`` up to ``height``, its blocks paying ``miner``."""
    builder = ChainBuilder(miner=miner)
    view = MemoryCoinsView(src.builder.view.coins)
    wallet = dict(src.wallet)
    for h in range(src.height, height, -1):
        block, undo = src.builder.blocks[h], src.builder.undos[h]
        disconnect_block(block, undo, view)
        for tx, coins in zip(block.txs[1:], undo.spent, strict=True):
            for txin, coin in zip(tx.inputs, coins, strict=True):
                if coin.output.pubkey_hash in OWNER and not coin.is_coinbase:
                    wallet[txin.prevout] = coin.output
        for tx in block.txs:  # then drop what the block created (spent in it or not)
            for index in range(len(tx.outputs)):
                wallet.pop(OutPoint(tx.txid(), index), None)
    builder.view = view
    builder.blocks = src.builder.blocks[: height + 1]
    builder.undos = src.builder.undos[: height + 1]
    return Branch(builder, wallet)


def _fork_height(a: Branch, b: Branch) -> int:
    h = min(a.height, b.height)
    while a.builder.blocks[h].hash() != b.builder.blocks[h].hash():
        h -= 1
    return h


def build_sequence(length: int, seed: int = SEED) -> BlockSequence:
    """At least ``length`` blocks (heights 1...) and the reference UTXO set info of each."""
    rng = random.Random(seed)
    seq = BlockSequence()
    genesis = REGTEST.genesis
    stats = UtxoStats()
    _apply(stats, genesis, 0, [])
    seq.stats[genesis.hash()] = stats
    seq.reference[genesis.hash()] = (
        0,
        genesis.hash(),
        stats.count,
        stats.total_amount,
        stats.hash(),
    )
    base = Branch(ChainBuilder(miner=key(0)))
    for _ in range(100):
        _add(seq, base, base.builder.next_block())
    split = spend(
        [base.builder.coinbase_coin(1)], [TxOut(2 * 10**8, k.pubkey_hash) for k in WALLET * 3]
    )
    _add(seq, base, base.builder.next_block([split]))
    best = base
    branches = [base]
    miners = 100
    while len(seq.blocks) < length:
        if best.height < 103 or rng.random() < 0.3:  # the best chain grows
            for _ in range(rng.randint(1, 3)):
                _grow(rng, seq, best)
            continue
        rivals = [
            b
            for b in branches
            if b is not best and best.height - _fork_height(best, b) <= MAX_FORK_DEPTH
        ]
        if rivals and rng.random() < 0.6:
            rival = rng.choice(rivals)
        else:
            depth = rng.randint(1, min(MAX_FORK_DEPTH, best.height - 101))
            rival = _fork(best, best.height - depth, key(miners))
            miners += 1
            branches.append(rival)
        target = best.height + rng.randint(1, 2)
        while rival.height < target:
            _grow(rng, seq, rival)
        best = rival
        branches = [b for b in branches if best.height - _fork_height(best, b) <= MAX_FORK_DEPTH]
        branches = branches[-3:]
    return seq


def write_blocks(blocks: list[Block], path: Path) -> None:
    path.write_bytes(msgpack.packb([b.serialize() for b in blocks], use_bin_type=True))


def read_blocks(path: Path) -> list[bytes]:
    raw: list[bytes] = msgpack.unpackb(path.read_bytes(), raw=True)
    return raw


def main(db_path: str, blocks_path: str) -> None:
    store = LevelDBStore(db_path)
    chainstate = Chainstate(store, REGTEST, clock=lambda: FAR_FUTURE, sync=True)
    for index, raw in enumerate(read_blocks(Path(blocks_path))):
        try:
            chainstate.process_block(Block.deserialize(raw))
        except ValidationError as err:
            if err.code != codes.DUPLICATE:
                raise
            continue
        print(index, flush=True)  # progress, so the test can kill at a chosen point
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
