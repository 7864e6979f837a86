"""One registry of key prefixes (``node.chainstate.schema.REGISTRY``), and it is the truth.

The node keeps everything in one key-value store, each table under its own first byte. These
tests check the registry itself (one owner per prefix, no prefix starting another, owners that
exist and declare what the registry says they own, the derived set reindex wipes), that
``docs/PROTOCOL.md``'s key table lists the same prefixes, and that every key a chainstate
writes, while it is created, connects a chain with spends (an output spent in the block that
creates it included), keeps orphans, reorganises, disconnects by hand, reconsiders and
reindexes, starts with a registered prefix, and that each prefix the chainstate's parts own is
written at all (so the registry holds no dead table).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

from consensus import OutPoint, TxOut
from node.chainstate import Chainstate
from node.chainstate import schema as k
from node.chainstate.blockstore import BlockStore
from node.chainstate.coins import Coins
from node.indexes import AddressIndex, SpenderIndex, TxIndex, default_indexes
from node.storage import MemoryStore, WriteBatch
from node.storage.memory import _MemoryWriteBatch
from tests.helpers import REGTEST, ChainBuilder, key, spend

ROOT = Path(__file__).resolve().parents[2]
FAR_FUTURE = 2**31
FEE = 1000

CHAINSTATE_OWNERS = {
    "node.chainstate.chainstate",
    "node.chainstate.blockstore",
    "node.chainstate.chain",
    "node.chainstate.coins",
    "node.chainstate.reindex",
    "node.indexes.tx",
    "node.indexes.spender",
    "node.indexes.address",
}


class _RecordingBatch(_MemoryWriteBatch):
    def __init__(self, store: RecordingStore, *, sync: bool) -> None:
        super().__init__(store, sync=sync)
        self._recorder = store

    def _put(self, key: bytes, value: bytes) -> None:
        self._recorder.written.append(key)
        super()._put(key, value)

    def _delete(self, key: bytes) -> None:
        self._recorder.written.append(key)
        super()._delete(key)


class RecordingStore(MemoryStore):
    """A memory store that records the key of every put and delete, batched or not."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.written.append(key)
        super().put(key, value)

    def delete(self, key: bytes) -> None:
        self.written.append(key)
        super().delete(key)

    def _new_batch(self, sync: bool) -> WriteBatch:
        return _RecordingBatch(self, sync=sync)


def registered(key_: bytes) -> list[bytes]:
    return [p.prefix for p in k.REGISTRY if key_.startswith(p.prefix)]


# --- the registry --------------------------------------------------------------------------------


def test_every_prefix_has_one_owner_and_none_starts_another() -> None:
    prefixes = [p.prefix for p in k.REGISTRY]
    assert len(prefixes) == len(set(prefixes)), "a prefix is registered twice"
    for a in prefixes:
        assert a, "an empty prefix would own every key"
        for b in prefixes:
            assert a == b or not b.startswith(a), f"{a!r} is a prefix of {b!r}"
    for p in k.REGISTRY:
        assert p.owner and p.description, p
        assert "\n" not in p.description, "one line"
        importlib.import_module(p.owner)  # the owner is a real module


def test_owners_declare_what_the_registry_gives_them() -> None:
    store = MemoryStore()
    parts: dict[str, tuple[bytes, ...]] = {
        "node.chainstate.blockstore": BlockStore(store).prefixes,
        "node.chainstate.coins": Coins(store).prefixes,
    }
    for index in default_indexes(store):
        parts[type(index).__module__] = index.prefixes
    assert {type(i) for i in default_indexes(store)} == {TxIndex, SpenderIndex, AddressIndex}
    for owner, prefixes in parts.items():
        assert set(prefixes) == set(k.owned_by(owner)), owner
    # Prefixes defined outside the chainstate are registered with the value their owner uses.
    assert importlib.import_module("node.mempool").P_MEMPOOL == k.P_MEMPOOL
    assert importlib.import_module("node.p2p.banman").P_BAN == k.P_BAN
    assert {p.owner for p in k.REGISTRY} == CHAINSTATE_OWNERS | {"node.mempool", "node.p2p.banman"}


def test_derived_prefixes_are_the_registered_derived_ones() -> None:
    assert len(k.DERIVED_PREFIXES) == len(set(k.DERIVED_PREFIXES))
    assert set(k.DERIVED_PREFIXES) == {p.prefix for p in k.REGISTRY if p.derived}


def test_protocol_key_table_lists_the_registered_prefixes() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("## 8. Node database", 1)[1].split("\n## ", 1)[0]
    documented = [
        m.group(1).encode("ascii") for m in re.finditer(r"^\| `([^`]+)`", section, re.MULTILINE)
    ]
    assert len(documented) == len(set(documented))
    assert set(documented) == {p.prefix for p in k.REGISTRY}
    for p in k.REGISTRY:  # and with the same owner
        row = next(
            line for line in section.splitlines() if line.startswith(f"| `{p.prefix.decode()}`")
        )
        assert f"`{p.owner}`" in row, row


def test_the_indexes_import_nothing_from_the_chainstate() -> None:
    """``node.chainstate`` depends on ``node.indexes``, never the other way round (no cycle)."""
    for path in sorted((ROOT / "node" / "indexes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("node.chainstate"), f"{path.name} imports {name}"


# --- what a chainstate writes --------------------------------------------------------------------


def scenario(store: RecordingStore) -> Iterator[str]:
    """Drive a chainstate through every kind of write; yield the name of each step."""
    cs = Chainstate(store, REGTEST, clock=lambda: FAR_FUTURE, sync=False)
    yield "create"
    main = ChainBuilder()
    main.grow(101)
    payer, payee = key(1), key(2)
    cb = main.coinbase_coin(1)
    first = spend([cb], [TxOut(cb[1].amount - FEE, payer.pubkey_hash)])
    second = spend(
        [(OutPoint(first.txid(), 0), first.outputs[0], payer)],
        [TxOut(first.outputs[0].amount - FEE, payee.pubkey_hash)],
    )
    main.add(main.next_block([first, second], fees=2 * FEE))  # spends what it creates
    main.grow(2)
    for block in main.blocks[1:]:
        cs.process_block(block)
    assert cs.height == 104 and cs.get_spender(OutPoint(first.txid(), 0)) is not None
    yield "connect"
    side = ChainBuilder(miner=key(9))
    for block in main.blocks[1:102]:
        side.add(block)
    side.grow(5)
    for block in reversed(side.blocks[103:]):
        cs.process_block(block)  # orphans, then the chain they hang from: a reorganisation
    cs.process_block(side.blocks[102])
    assert cs.tip.hash == side.tip.hash()
    cs.forget_returned([key_ for key_, _ in cs.returned_blocks()])
    yield "reorganise"
    cs.invalidate_block(side.blocks[104].hash())
    assert cs.tip.hash == main.tip.hash()  # back to the first chain, disconnecting on the way
    yield "disconnect"
    cs.reconsider_block(side.blocks[104].hash())
    assert cs.tip.hash == side.tip.hash()
    yield "reconsider"
    cs.reindex()
    assert cs.tip.hash == side.tip.hash()
    yield "reindex"


def test_every_key_a_chainstate_writes_is_registered() -> None:
    store = RecordingStore()
    seen: set[bytes] = set()
    for step in scenario(store):
        for written in store.written:
            owners = registered(written)
            assert len(owners) == 1, f"{step}: key {written!r} matches {owners}"
            seen.add(owners[0])
        store.written.clear()
    owned = {p.prefix for p in k.REGISTRY if p.owner in CHAINSTATE_OWNERS}
    assert seen == owned, f"written but not owned: {seen - owned}, never written: {owned - seen}"
