"""Shared builders for tests and benchmarks: deterministic keys, coinbases, signed spends and
regtest blocks with valid proof of work, and a ``ChainBuilder`` that grows a chain on a
``MemoryCoinsView`` through the real ``check_block``/``connect_block``.

Nothing here fakes a rule: every block it makes passes the real checks unless a test breaks it
on purpose (``mine_block`` takes every field as a parameter for that).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus import (
    NULL_OUTPOINT,
    Block,
    BlockHeader,
    BlockUndo,
    MemoryCoinsView,
    NetworkParams,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    block_merkle_root,
    block_subsidy,
    check_block,
    check_proof_of_work,
    connect_block,
    get_params,
    hash160,
    pubkey_from_privkey,
    sign_transaction,
)

REGTEST = get_params("regtest")


@dataclass(frozen=True)
class Key:
    """A deterministic test key."""

    privkey: bytes
    pubkey: bytes
    pubkey_hash: bytes


def key(n: int) -> Key:
    """Key number ``n`` (the same on every run)."""
    priv = hashlib.sha256(b"tally test key %d" % n).digest()
    pub = pubkey_from_privkey(priv)
    return Key(priv, pub, hash160(pub))


def coinbase(height: int, pubkey_hash: bytes, amount: int, extra: bytes = b"") -> Transaction:
    """A coinbase for ``height`` paying ``amount`` to ``pubkey_hash``."""
    return Transaction(
        1,
        (TxIn(NULL_OUTPOINT, b"", height.to_bytes(4, "little") + extra),),
        (TxOut(amount, pubkey_hash),),
        0,
    )


def spend(
    coins: Sequence[tuple[OutPoint, TxOut, Key]],
    outputs: Sequence[TxOut],
    params: NetworkParams = REGTEST,
    locktime: int = 0,
) -> Transaction:
    """A signed transaction spending ``coins`` (outpoint, the output it holds, its owner)."""
    unsigned = Transaction(1, tuple(TxIn(op) for op, _, _ in coins), tuple(outputs), locktime)
    return sign_transaction(
        unsigned, [out for _, out, _ in coins], [k.privkey for _, _, k in coins], params
    )


def solve(header: BlockHeader, params: NetworkParams) -> BlockHeader:
    """The header with the first nonce that meets its bits (instant on regtest)."""
    nonce = header.nonce
    while True:
        candidate = BlockHeader(
            header.version, header.prev_hash, header.merkle_root, header.time, header.bits, nonce
        )
        if check_proof_of_work(candidate.hash(), candidate.bits, params.pow_limit):
            return candidate
        nonce += 1


def mine_block(
    prev_hash: bytes,
    height: int,
    txs: Sequence[Transaction],
    time: int,
    pubkey_hash: bytes,
    params: NetworkParams = REGTEST,
    fees: int = 0,
    bits: int | None = None,
) -> Block:
    """A block at ``height`` on ``prev_hash`` with a coinbase claiming subsidy + ``fees``."""
    cb = coinbase(height, pubkey_hash, block_subsidy(height, params) + fees)
    all_txs = (cb, *txs)
    root, _ = block_merkle_root(all_txs)
    header = BlockHeader(
        1, prev_hash, root, time, params.pow_limit_bits if bits is None else bits, 0
    )
    return Block(solve(header, params), all_txs)


@dataclass
class ChainBuilder:
    """A regtest chain on a ``MemoryCoinsView``, grown through the real validation."""

    params: NetworkParams = REGTEST
    miner: Key = field(default_factory=lambda: key(0))
    view: MemoryCoinsView = field(default_factory=MemoryCoinsView)
    blocks: list[Block] = field(default_factory=list)
    undos: list[BlockUndo] = field(default_factory=list)

    def __post_init__(self) -> None:
        genesis = self.params.genesis
        check_block(genesis, self.params)
        self.undos.append(connect_block(genesis, 0, self.view, self.params))
        self.blocks.append(genesis)

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    @property
    def tip(self) -> Block:
        return self.blocks[-1]

    def next_block(self, txs: Sequence[Transaction] = (), fees: int = 0) -> Block:
        """The block that would extend the tip (not connected)."""
        height = self.height + 1
        return mine_block(
            self.tip.hash(),
            height,
            txs,
            self.params.genesis_time + height * 60,
            self.miner.pubkey_hash,
            self.params,
            fees,
        )

    def add(self, block: Block) -> BlockUndo:
        """Check and connect ``block`` at the next height."""
        check_block(block, self.params)
        undo = connect_block(block, self.height + 1, self.view, self.params)
        self.blocks.append(block)
        self.undos.append(undo)
        return undo

    def grow(self, count: int) -> None:
        """Add ``count`` empty blocks."""
        for _ in range(count):
            self.add(self.next_block())

    def coinbase_coin(self, height: int) -> tuple[OutPoint, TxOut, Key]:
        """The coinbase output of the block at ``height``, ready for ``spend``."""
        cb = self.blocks[height].txs[0]
        return OutPoint(cb.txid(), 0), cb.outputs[0], self.miner


def block_of_spends(
    ntx: int, params: NetworkParams = REGTEST, fee: int = 1000
) -> tuple[ChainBuilder, list[Transaction]]:
    """A chain that can take a block of ``ntx`` one-input spends, and those spends.

    The builder holds heights 1 to ``coinbase_maturity + 1``: empty blocks, then one whose
    transaction fans the first coinbase out to ``ntx`` outputs, each for its own key. The spends
    (not yet in a block: ``builder.next_block(txs, fees=fee * len(txs))``) each carry a fresh
    signature by a distinct key.
    """
    builder = ChainBuilder(params=params)
    builder.grow(params.coinbase_maturity)
    outpoint, out, owner = builder.coinbase_coin(1)
    per = (out.amount - fee) // ntx
    keys = [key(10_000 + i) for i in range(ntx)]
    fan = spend([(outpoint, out, owner)], [TxOut(per, k.pubkey_hash) for k in keys], params)
    builder.add(builder.next_block([fan], fees=out.amount - per * ntx))
    txid = fan.txid()
    txs = [
        spend(
            [(OutPoint(txid, i), fan.outputs[i], keys[i])],
            [TxOut(per - fee, keys[(i + 1) % ntx].pubkey_hash)],
            params,
        )
        for i in range(ntx)
    ]
    return builder, txs
