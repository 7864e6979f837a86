"""The worker of ``test_mempool_crash_loop.py``, and the scenario it plays (issue 17, acceptance 3).

``build_scenario()`` makes, deterministically, a regtest chain and the transactions of a node
that keeps reorganising with thousands of transactions in its mempool. Phase 0 first processes
the base chain (109 blocks, then a block that fans 10 coinbases out into 2,500 coins); every
phase ``k`` then

1. submits ``S_k``: payments of fresh coins (each split in two outputs) and children of
   unconfirmed payments (phase 0 submits 1,000 payments);
2. processes ``M_k``, a block on the tip confirming the 150 oldest pool transactions;
3. processes ``R_k``, two blocks forking below ``M_k`` (so the node reorganises, one block
   deep): the first double-spends the coins of 5 of ``M_k``'s transactions and of 3 pool
   transactions, the second confirms 10 other pool transactions.

With it, for every state a restarted node can be in (its tip, and whether ``S_k`` was
submitted), the mempool an uncrashed node must hold: ``expected_pool`` computes it from the
chain's coins alone (independently of the mempool's code), as every submitted transaction
that is not in the chain and whose inputs are unspent coins of the chain or outputs of other
such transactions. The scenario has no conflicts but those with the chain, no locktimes and
fees well above the relay minimum, so that set is exactly what "nothing valid lost, nothing
invalid kept" means.

Run as a script, ``python mempool_crash_worker.py DB SCENARIO PHASE KILL DUMP`` opens the node's
state on a LevelDB directory as ``node.service`` wires it (chainstate with synced writes, then
mempool, subscribed, then ``load``), writes what ``load`` restored to ``DUMP`` (JSON: tip, txid
-> entry time), then plays phase ``PHASE`` (``-1``: none). It kills itself with ``SIGKILL`` at
the point ``KILL`` names (``none``: it exits normally):

- ``load:N``: when ``load`` is about to accept its ``N``-th transaction (from 0);
- ``takeback:N``: the same in the pass after ``R_k``'s reorganisation;
- ``disconnected``: as soon as the chainstate has committed ``M_k``'s disconnection;
- ``connected``: as soon as it has committed ``R_k``'s first block (before the reorganisation
  is over);
- ``forget``: when the pass, its deletions committed, is about to forget the chain's records;
- ``mined``: as soon as ``M_k`` is committed, before the mempool removes what it confirms.

A phase played again after a kill resubmits what it had submitted (refusals are then expected:
already known, or confirmed) and skips the blocks already stored.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from consensus import Block, Coin, MemoryCoinsView, OutPoint, Transaction, TxOut, ValidationError
from consensus import errors as codes
from node.chainstate import Chainstate
from node.chainstate.events import BlockConnected, BlockDisconnected, ChainEvent
from node.mempool import AcceptResult, ChainView, Mempool
from node.sigcache import SignatureCache
from node.storage import LevelDBStore
from tests.helpers import REGTEST, ChainBuilder, Key, key, spend

FAR_FUTURE = 2**31
NOW = 1_700_000_000.0  # the mempool's clock in phase k is NOW + k (no entry ever expires)
OWNER = key(41)
FANS = 10
COINS_PER_FAN = 250
FIRST_PAYMENTS = 1_000
PAYMENTS = 100  # fresh coins spent a phase after the first
CHILDREN = 100  # children of unconfirmed transactions a phase
MINED = 150
DOUBLE_SPENT_MINED = 5
DOUBLE_SPENT_POOL = 3
CONFIRMED_BY_RIVAL = 10
FEE = 2_000


@dataclass
class Phase:
    submitted: list[Transaction]
    mined: Block
    rival: list[Block]


@dataclass
class Scenario:
    base: list[Block]  # heights 1.. (genesis excluded), the fan-out last
    phases: list[Phase] = field(default_factory=list)
    expected: dict[tuple[bytes, int], set[bytes]] = field(default_factory=dict)
    """(tip hash, number of phases whose ``S`` was submitted) -> the txids of the pool."""


def _copy(builder: ChainBuilder, miner: Key) -> ChainBuilder:
    """A builder at the same tip whose next blocks pay ``miner``."""
    copy = ChainBuilder(miner=miner)
    copy.view = MemoryCoinsView(builder.view.coins)
    copy.blocks = list(builder.blocks)
    copy.undos = list(builder.undos)
    return copy


def _pay(coins: list[tuple[OutPoint, TxOut]], parts: int) -> Transaction:
    """``OWNER``'s coins paid to ``OWNER`` in ``parts`` outputs, less ``FEE``."""
    total = sum(o.amount for _, o in coins) - FEE
    each = total // parts
    amounts = [total - each * (parts - 1)] + [each] * (parts - 1)
    return spend(
        [(op, o, OWNER) for op, o in coins], [TxOut(a, OWNER.pubkey_hash) for a in amounts]
    )


def expected_pool(
    coins: dict[OutPoint, Coin], confirmed: set[bytes], candidates: list[Transaction]
) -> list[Transaction]:
    """The candidates (in a parents-first order) a node whose chain has the unspent ``coins``
    and confirmed ``confirmed`` holds in its pool: not confirmed, every input unspent."""
    available = set(coins)
    spent: set[OutPoint] = set()
    pool: list[Transaction] = []
    for tx in candidates:
        txid = tx.txid()
        if txid in confirmed:
            continue
        inputs = [txin.prevout for txin in tx.inputs]
        if any(op not in available or op in spent for op in inputs):
            continue
        spent.update(inputs)
        available.update(OutPoint(txid, i) for i in range(len(tx.outputs)))
        pool.append(tx)
    return pool


def _fee(tx: Transaction, spendable: dict[OutPoint, TxOut]) -> int:
    return sum(spendable[i.prevout].amount for i in tx.inputs) - tx.total_out()


def build_scenario(phases: int) -> Scenario:
    chain = ChainBuilder(miner=key(40))
    chain.grow(REGTEST.coinbase_maturity + FANS - 1)  # the FANS first coinbases are mature
    fans = [_fan_out(chain.blocks[h].txs[0]) for h in range(1, FANS + 1)]
    chain.add(chain.next_block(fans, fees=FEE * FANS))
    scenario = Scenario(base=chain.blocks[1:])
    fresh = [(OutPoint(f.txid(), i), o) for f in fans for i, o in enumerate(f.outputs)]
    fresh.reverse()  # popped from the end: the first coins first
    submitted: list[Transaction] = []  # every S so far, in order (parents first)
    outputs: dict[OutPoint, TxOut] = {op: c.output for op, c in chain.view.coins.items()}

    def confirmed_in(builder: ChainBuilder) -> set[bytes]:
        return {tx.txid() for block in builder.blocks for tx in block.txs}

    def pool_of(builder: ChainBuilder) -> list[Transaction]:
        return expected_pool(builder.view.coins, confirmed_in(builder), submitted)

    def expect(builder: ChainBuilder, through: int) -> None:
        scenario.expected[(builder.tip.hash(), through)] = {t.txid() for t in pool_of(builder)}

    for k in range(phases):
        expect(chain, k)
        pool = pool_of(chain)
        spent_in_pool = {i.prevout for t in pool for i in t.inputs}
        unspent = [
            OutPoint(t.txid(), i)
            for t in pool
            for i in range(len(t.outputs))
            if OutPoint(t.txid(), i) not in spent_in_pool
        ]
        batch: list[Transaction] = []
        for _ in range(FIRST_PAYMENTS if k == 0 else PAYMENTS):
            op, o = fresh.pop()
            batch.append(_pay([(op, o)], 2))
        for op in unspent[:: max(1, len(unspent) // CHILDREN)][:CHILDREN]:
            batch.append(_pay([(op, outputs[op])], 1))
        for tx in batch:
            for i, o in enumerate(tx.outputs):
                outputs[OutPoint(tx.txid(), i)] = o
        submitted += batch
        expect(chain, k + 1)

        pool = pool_of(chain)
        mined_txs = pool[:MINED]
        fork = _copy(chain, key(1000 + k))
        mined = chain.next_block(mined_txs, fees=sum(_fee(t, outputs) for t in mined_txs))
        chain.add(mined)
        expect(chain, k + 1)

        # The rival: double-spends of chain coins some of M's and the pool's transactions spend.
        rest = pool[MINED:]
        on_chain = [t for t in mined_txs if all(i.prevout in fork.view.coins for i in t.inputs)]
        rest_on_chain = [t for t in rest if all(i.prevout in fork.view.coins for i in t.inputs)]
        victims = on_chain[:DOUBLE_SPENT_MINED] + rest_on_chain[:DOUBLE_SPENT_POOL]
        doubles = [_pay([(t.inputs[0].prevout, outputs[t.inputs[0].prevout])], 3) for t in victims]
        first = fork.next_block(doubles, fees=FEE * len(doubles))
        fork.add(first)
        confirmed = rest_on_chain[DOUBLE_SPENT_POOL : DOUBLE_SPENT_POOL + CONFIRMED_BY_RIVAL]
        second = fork.next_block(confirmed, fees=sum(_fee(t, outputs) for t in confirmed))
        fork.add(second)
        for tx in doubles:
            for i, o in enumerate(tx.outputs):
                outputs[OutPoint(tx.txid(), i)] = o
        fork.miner = chain.miner
        chain = fork
        scenario.phases.append(Phase(batch, mined, [first, second]))
    expect(chain, phases)
    return scenario


def _fan_out(coinbase_tx: Transaction) -> Transaction:
    """A coinbase of the base chain split into ``COINS_PER_FAN`` coins of ``OWNER``."""
    out = coinbase_tx.outputs[0]
    each = (out.amount - FEE) // COINS_PER_FAN
    return spend(
        [(OutPoint(coinbase_tx.txid(), 0), out, key(40))],
        [TxOut(each, OWNER.pubkey_hash)] * COINS_PER_FAN,
    )


# --- the scenario on disk ----------------------------------------------------------------------


def write_scenario(scenario: Scenario, path: Path) -> None:
    phases = [
        [
            [t.serialize() for t in p.submitted],
            p.mined.serialize(),
            [b.serialize() for b in p.rival],
        ]
        for p in scenario.phases
    ]
    path.write_bytes(
        msgpack.packb([[b.serialize() for b in scenario.base], phases], use_bin_type=True)
    )


def read_scenario(path: Path) -> tuple[list[Block], list[Phase]]:
    base, phases = msgpack.unpackb(path.read_bytes(), raw=True)
    return [Block.deserialize(b) for b in base], [
        Phase(
            [Transaction.deserialize(t) for t in submitted],
            Block.deserialize(mined),
            [Block.deserialize(b) for b in rival],
        )
        for submitted, mined, rival in phases
    ]


# --- the worker --------------------------------------------------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Killer:
    """Kills the process at the point ``spec`` names (see the module's docstring)."""

    def __init__(self, spec: str) -> None:
        self.kind, _, count = spec.partition(":")
        self.count = int(count) if count else 0
        self.stage = "load"
        self.accepts = 0
        self.mined_hash = b""

    def watch_chainstate(self, chainstate: Chainstate) -> None:
        """Before ``ChainView.of`` takes the chainstate's methods."""
        real_forget = chainstate.forget_returned

        def forget_returned(keys: list[bytes]) -> None:
            if self.kind == "forget" and self.stage == "takeback" and keys:
                _die()
            real_forget(keys)

        chainstate.forget_returned = forget_returned  # type: ignore[method-assign]
        chainstate.subscribe(self.on_chain_event)  # before the mempool: it hears first

    def watch_mempool(self, mempool: Mempool) -> None:
        real_accept = mempool._accept_one

        def accept_one(tx: Transaction, *args: object, **kwargs: object) -> AcceptResult:
            if self.kind == self.stage:
                if self.accepts == self.count:
                    _die()
                self.accepts += 1
            return real_accept(tx, *args, **kwargs)  # type: ignore[arg-type]

        mempool._accept_one = accept_one  # type: ignore[method-assign]

    def on_chain_event(self, event: ChainEvent) -> None:
        """Runs after the chainstate's commit, before the mempool hears of it."""
        if isinstance(event, BlockDisconnected) and self.kind == "disconnected":
            _die()
        if isinstance(event, BlockConnected):
            if self.kind == "mined" and event.block.hash() == self.mined_hash:
                _die()
            if self.kind == "connected" and self.stage == "takeback":
                _die()

    def at(self, stage: str) -> None:
        self.stage = stage
        self.accepts = 0


def _process(chainstate: Chainstate, block: Block) -> None:
    try:
        chainstate.process_block(block)
    except ValidationError as err:
        if err.code != codes.DUPLICATE:
            raise


def main(db: str, scenario_path: str, phase_index: int, kill: str, dump: str) -> None:
    base, phases = read_scenario(Path(scenario_path))
    clock: list[float] = [NOW + max(phase_index, 0)]
    store = LevelDBStore(db)
    cache = SignatureCache()
    chainstate = Chainstate(
        store, REGTEST, clock=lambda: FAR_FUTURE, verify=cache.verify, sync=True
    )
    killer = Killer(kill)
    killer.watch_chainstate(chainstate)
    mempool = Mempool(
        ChainView.of(chainstate),
        REGTEST,
        verify=cache.verify,
        clock=lambda: clock[0],
        store=store,
    )
    killer.watch_mempool(mempool)
    chainstate.subscribe(mempool.on_chain_event)
    mempool.load()
    pool = {e.txid[::-1].hex(): e.time for e in mempool.entries.values()}
    state = {"tip": chainstate.tip.hash[::-1].hex(), "height": chainstate.height, "pool": pool}
    Path(dump + ".tmp").write_text(json.dumps(state))
    os.replace(dump + ".tmp", dump)
    if phase_index < 0:
        store.close()
        return
    if phase_index == 0:
        for block in base:
            _process(chainstate, block)
    phase = phases[phase_index]
    killer.at("submit")
    refused: dict[str, int] = {}
    for tx in phase.submitted:
        try:
            mempool.accept(tx, keep_orphan=False)
        except ValidationError as err:
            refused[err.code] = refused.get(err.code, 0) + 1
    print(json.dumps({"refused": refused}), flush=True)  # before any point it may die at
    killer.mined_hash = phase.mined.hash()
    _process(chainstate, phase.mined)
    killer.at("takeback")
    for block in phase.rival:
        _process(chainstate, block)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
