"""The devnet toolkit over a running devnet's nodes (SPEC 6): commands that span every node.

Job: ``DevnetControl`` holds one ``client.http.Client`` per node of a devnet (with its admin
token) and the devnet's folder, and offers the toolkit: ``mine``, ``automine``, ``time``,
``snapshot``/``revert``/``snapshots``/``reset``, ``partition``/``heal``, ``reorg``,
``invalidate``/``reconsider``, ``mempool_clear``, ``faucet``. Each calls the nodes' admin routes
(regtest only) and returns only when every node agrees on what the command implies: the same tip,
and for snapshot, revert and mempool clear the same mempool. ``tally-devnet`` (``node.devnet``)
and ``client.testing`` both drive a devnet through this one class.

Invariants:
- a command that needs a still network (snapshot, revert, reorg) turns automine off on every node
  first and puts back the mode node 0 had, so no block is mined between two nodes' steps;
- a devnet snapshot is a node snapshot of the same name on every node, taken when they agree, plus
  a copy of the dev wallet's file (mode kept, 0600) and a record ``<dir>/snapshots/<name>.json``;
  ``reset`` reverts to ``RESET_SNAPSHOT``, which ``tally-devnet up`` takes when it makes a devnet;
- every wait has a deadline (``AGREE_TIMEOUT``) and says which nodes disagreed when it passes.

Left to others: starting and stopping node processes (``node.devnet``), what each node does for
a route (``node.api.routes.toolkit``, ``node.api.routes.snapshots``), the dev wallet's keys
(``faucet`` runs the ``tally-wallet`` command, the wallet process keeps its keys).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.http import Client, ClientError, NodeError

AGREE_TIMEOUT = 60.0
"""Seconds a command waits for every node to agree before it fails."""
POLL = 0.05
RESET_SNAPSHOT = "_up"
"""The snapshot ``up`` takes of a new devnet; ``reset`` reverts to it. User names may not begin
with ``_``."""
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEV_PASSWORD = "devnet"  # noqa: S105 - a throwaway local wallet's password, printed to the user
STATE_FILE = "devnet.json"
WALLET_FILE = "wallet.json"
PARTITION_FILE = "partition.json"
"""The groups of the devnet's partition while one stands (``partition`` writes, ``heal``
removes it), so a command run in between waits only for the nodes that can agree."""


class DevnetCommandError(ClientError):
    """A toolkit command that makes no sense or could not be carried out; one line for people."""


def installed_command(name: str) -> str:
    """The command installed next to this Python (the virtual environment's)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass(frozen=True)
class NodeState:
    """What one node holds, for comparing nodes."""

    tip: str
    height: int
    mempool: frozenset[str]


def read_state(directory: Path) -> dict[str, Any]:
    """The devnet's ``devnet.json`` (written by ``tally-devnet up``), or ``{}``."""
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    state: dict[str, Any] = json.loads(path.read_text())
    return state


class DevnetControl:
    """The toolkit over the nodes of the devnet in ``directory``."""

    def __init__(
        self, directory: Path, nodes: Sequence[Client], address: str | None = None
    ) -> None:
        if not nodes:
            raise DevnetCommandError("the devnet has no node")
        self.dir = directory
        self.nodes = list(nodes)
        self.address = address
        """The dev wallet's receive address: where ``mine`` pays by default."""

    @classmethod
    def from_dir(cls, directory: Path) -> DevnetControl:
        """The control of the running devnet in ``directory`` (its state file and cookies)."""
        state = read_state(directory)
        if not state:
            raise DevnetCommandError(f"no devnet in {directory} (run 'tally-devnet up')")
        clients = []
        for entry in state["nodes"]:
            client = Client.from_datadir(Path(entry["datadir"]))
            clients.append(client)
        return cls(directory, clients, state.get("address"))

    @property
    def wallet_path(self) -> Path:
        return self.dir / WALLET_FILE

    def node(self, index: int) -> Client:
        if not 0 <= index < len(self.nodes):
            raise DevnetCommandError(
                f"no node {index}: the devnet has nodes 0 to {len(self.nodes) - 1}"
            )
        return self.nodes[index]

    # --- agreement ------------------------------------------------------------------------------

    def state_of(self, node: Client, mempool: bool = True) -> NodeState:
        info = node.info()
        txids = frozenset(node.mempool_all_txids()) if mempool else frozenset()
        return NodeState(info.best_hash, info.height, txids)

    def wait_agreement(
        self,
        mempool: bool = False,
        nodes: Sequence[Client] | None = None,
        until: Callable[[list[NodeState]], bool] | None = None,
        timeout: float = AGREE_TIMEOUT,
    ) -> list[NodeState]:
        """Until every node (of ``nodes``) has the same tip (and, with ``mempool``, the same
        mempool), and ``until`` holds of their states; their states."""
        group = self.nodes if nodes is None else list(nodes)
        deadline = time.monotonic() + timeout
        while True:
            states = [self.state_of(n, mempool) for n in group]
            same = all(s.tip == states[0].tip for s in states)
            if mempool:
                same = same and all(s.mempool == states[0].mempool for s in states)
            if same and (until is None or until(states)):
                return states
            if time.monotonic() > deadline:
                view = ", ".join(
                    f"node {self.nodes.index(n)} at {s.height} ({s.tip[:12]}, "
                    f"{len(s.mempool)} in mempool)"
                    for n, s in zip(group, states, strict=True)
                )
                raise DevnetCommandError(f"the nodes did not agree within {timeout:g} s: {view}")
            time.sleep(POLL)

    def _still(self) -> tuple[str, float | None]:
        """Turn automine off on every node; the mode node 0 had (to put back)."""
        mode = self.nodes[0].automine_state()
        for node in self.nodes:
            node.automine("off")
        return mode.mode, mode.interval

    def _resume(self, mode: tuple[str, float | None]) -> None:
        name, interval = mode
        if name != "off":
            self.nodes[0].automine(name, interval=interval, address=self.address)

    # --- mining ---------------------------------------------------------------------------------

    def mine(self, count: int, node: int = 0, address: str | None = None) -> list[str]:
        """Mine ``count`` blocks on node ``node`` paying ``address`` (the dev wallet's by
        default); their hashes, once every node has them."""
        to = address or self.address
        if to is None:
            raise DevnetCommandError("no address to mine to: give --to ADDRESS")
        hashes = self.node(node).generate(count, to)
        self.wait_agreement(
            nodes=self.reachable_from(node), until=lambda states: states[0].tip == hashes[-1]
        )
        return hashes

    def groups(self) -> list[list[int]] | None:
        """The partition's groups while one stands, else None."""
        path = self.dir / PARTITION_FILE
        if not path.exists():
            return None
        groups: list[list[int]] = json.loads(path.read_text())
        return groups

    def reachable_from(self, index: int) -> list[Client]:
        """The nodes that node ``index`` can reach: its group's while a partition stands."""
        for group in self.groups() or []:
            if index in group:
                return [self.nodes[i] for i in group if i < len(self.nodes)]
        return self.nodes

    def automine(self, mode: str, interval: float | None = None) -> Any:
        """Anvil's modes on node 0 (the miner): ``off``, ``tx`` or ``interval`` seconds."""
        if mode not in ("off", "tx", "interval"):
            raise DevnetCommandError(f"automine takes off, tx or interval S, not {mode!r}")
        if mode == "interval" and (interval is None or not interval > 0):
            raise DevnetCommandError("automine interval needs a positive number of seconds")
        for other in self.nodes[1:]:
            other.automine("off")
        return self.nodes[0].automine(mode, interval=interval, address=self.address)

    # --- time -----------------------------------------------------------------------------------

    def time_show(self) -> list[Any]:
        return [node.time() for node in self.nodes]

    def time_set(self, unix: int) -> list[Any]:
        return [node.time_set(unix) for node in self.nodes]

    def time_advance(self, seconds: int) -> list[Any]:
        """Every node's clock moves by ``seconds``; they all end on the same clock (node 0's)."""
        first = self.nodes[0].time_advance(seconds)
        return [first, *(node.time_set(first.now) for node in self.nodes[1:])]

    # --- snapshots ------------------------------------------------------------------------------

    def _record(self, name: str) -> Path:
        return self.dir / "snapshots" / f"{name}.json"

    def snapshot(self, name: str, reserved: bool = False) -> dict[str, Any]:
        """Every node's chain and mempool and the dev wallet's file, as ``name``."""
        if not (reserved or SNAPSHOT_NAME.match(name)):
            raise DevnetCommandError(
                f"a snapshot name is 1 to 64 letters, digits, '_', '.' or '-', not starting "
                f"with '_' or '.': {name!r}"
            )
        mode = self._still()
        try:
            states = self.wait_agreement(mempool=True)
            for node in self.nodes:
                node.snapshot(name)
            folder = self.dir / "snapshots"
            folder.mkdir(exist_ok=True)
            if self.wallet_path.exists():
                shutil.copy2(self.wallet_path, folder / f"{name}.{WALLET_FILE}")
            record = {
                "name": name,
                "created": int(time.time()),
                "height": states[0].height,
                "best_hash": states[0].tip,
                "mempool": len(states[0].mempool),
                "nodes": len(self.nodes),
            }
            tmp = self._record(name).with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=2))
            os.replace(tmp, self._record(name))
            return record
        finally:
            self._resume(mode)

    def snapshots(self) -> list[dict[str, Any]]:
        """The devnet's snapshots, oldest first (``reset``'s own is not listed)."""
        folder = self.dir / "snapshots"
        if not folder.is_dir():
            return []
        records = [json.loads(p.read_text()) for p in folder.glob("*.json") if p.is_file()]
        records = [r for r in records if isinstance(r, dict) and "name" in r]
        return sorted(
            (r for r in records if not str(r["name"]).startswith("_")),
            key=lambda r: (r.get("created", 0), r["name"]),
        )

    def revert(self, name: str) -> dict[str, Any]:
        """Every node and the dev wallet back to the snapshot ``name``, exactly."""
        path = self._record(name)
        if not path.exists():
            known = ", ".join(r["name"] for r in self.snapshots()) or "none"
            raise DevnetCommandError(f"no snapshot {name!r} (snapshots: {known})")
        record: dict[str, Any] = json.loads(path.read_text())
        if int(record.get("nodes", 0)) != len(self.nodes):
            raise DevnetCommandError(
                f"snapshot {name!r} is of {record.get('nodes')} nodes; the devnet has "
                f"{len(self.nodes)} now (bring it back with 'up --nodes')"
            )
        mode = self._still()
        groups = self.groups()
        urls = [node.url for node in self.nodes]
        try:
            # Apart while they revert: a node reverted first would otherwise fetch the blocks of
            # one not reverted yet, and end where it was.
            for node in self.nodes:
                node.partition([u for u in urls if u != node.url])
            for node in self.nodes:
                node.revert(name)
            wallet_copy = self.dir / "snapshots" / f"{name}.{WALLET_FILE}"
            if wallet_copy.exists():
                tmp = self.wallet_path.with_suffix(".revert")
                shutil.copy2(wallet_copy, tmp)
                os.replace(tmp, self.wallet_path)
        finally:
            for node in self.nodes:
                node.heal()
            if groups is not None:
                self.partition(groups)
        try:
            for group in groups or [list(range(len(self.nodes)))]:
                self.wait_agreement(
                    mempool=True,
                    nodes=[self.nodes[i] for i in group],
                    until=lambda states: states[0].tip == record["best_hash"],
                )
            return record
        finally:
            self._resume(mode)

    def reset(self) -> dict[str, Any]:
        """The devnet as ``up`` made it: funded, no other history."""
        if not self._record(RESET_SNAPSHOT).exists():
            raise DevnetCommandError(
                "this devnet has no snapshot of how it was made (it predates 'reset'); "
                "'down', remove its folder and 'up' again"
            )
        return self.revert(RESET_SNAPSHOT)

    # --- partitions -----------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[int]]) -> list[list[int]]:
        """Groups of nodes that cannot reach each other: every node refuses every node outside
        its group, until ``heal``."""
        named = [i for group in groups for i in group]
        for i in named:
            self.node(i)
        twice = sorted({i for i in named if named.count(i) > 1})
        if twice:
            raise DevnetCommandError(f"node {twice[0]} is named twice")
        missing = [i for i in range(len(self.nodes)) if i not in named]
        if missing:
            raise DevnetCommandError(
                f"node {missing[0]} is in no group (name every node, e.g. 'partition 0 1,2')"
            )
        if len(groups) < 2:
            raise DevnetCommandError("a partition needs at least two groups")
        for group in groups:
            outside = [self.nodes[j].url for j in named if j not in group]
            for i in group:
                self.nodes[i].partition(outside)
        result = [list(g) for g in groups]
        tmp = self.dir / (PARTITION_FILE + ".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, self.dir / PARTITION_FILE)
        return result

    def heal(self) -> list[NodeState]:
        """Every node reaches every other again; returns once they agree on one tip."""
        for node in self.nodes:
            node.heal()
        (self.dir / PARTITION_FILE).unlink(missing_ok=True)
        return self.wait_agreement()

    # --- chain control --------------------------------------------------------------------------

    def reorg(self, depth: int, drop: Sequence[str] = ()) -> Any:
        """A longer branch from ``depth`` blocks back replaces the tip on every node; ``drop``ped
        transactions leave every mempool, the other disconnected ones stay in them."""
        if depth < 1:
            raise DevnetCommandError("a reorg's depth is at least 1")
        mode = self._still()
        try:
            self.wait_agreement()
            height = self.nodes[0].info().height
            if depth >= height:
                raise DevnetCommandError(
                    f"cannot reorg {depth} blocks deep: the chain is {height} blocks high"
                )
            answer = self.nodes[0].reorg(depth, list(drop))
            self.wait_agreement(until=lambda states: states[0].tip == answer.new_tip)
            if drop:
                self._drop_everywhere(list(drop))
            return answer
        finally:
            self._resume(mode)

    def _drop_everywhere(self, txids: list[str]) -> None:
        """Until no node holds any of ``txids`` (a node that took one back may relay it again
        while the others drop it; so drop everywhere, then check everywhere)."""
        deadline = time.monotonic() + AGREE_TIMEOUT
        while True:
            for node in self.nodes:
                node.mempool_clear(txids)
            time.sleep(POLL)
            held = [
                (i, t)
                for i, node in enumerate(self.nodes)
                for t in set(txids) & set(node.mempool_all_txids())
            ]
            if not held:
                return
            if time.monotonic() > deadline:
                raise DevnetCommandError(f"node {held[0][0]} keeps {held[0][1]} in its mempool")

    def invalidate(self, block_hash: str) -> list[NodeState]:
        """Every node marks ``block_hash`` invalid (and so leaves its branch)."""
        for node in self.nodes:
            self._mark(node, block_hash, invalid=True)
        return self.wait_agreement()

    def reconsider(self, block_hash: str) -> list[NodeState]:
        for node in self.nodes:
            self._mark(node, block_hash, invalid=False)
        return self.wait_agreement()

    @staticmethod
    def _mark(node: Client, block_hash: str, invalid: bool) -> None:
        try:
            if invalid:
                node.invalidate(block_hash)
            else:
                node.reconsider(block_hash)
        except NodeError as err:
            if err.status == 404:
                raise DevnetCommandError(f"no node knows a block {block_hash}") from None
            raise

    def mempool_clear(self) -> int:
        """Every node's mempool emptied; how many transactions node 0 held."""
        mode = self._still()
        try:
            removed = [node.mempool_clear() for node in self.nodes]
            self.wait_agreement(mempool=True, until=lambda states: not states[0].mempool)
            return int(removed[0])
        finally:
            self._resume(mode)

    # --- the dev wallet -------------------------------------------------------------------------

    def wallet(self, *args: str, timeout: float = 300.0) -> Any:
        """Run ``tally-wallet --json ARGS`` on the dev wallet against node 0; its JSON answer."""
        env = {**os.environ, "TALLY_WALLET_PASSWORD": DEV_PASSWORD}
        command = [
            installed_command("tally-wallet"),
            "--wallet",
            str(self.wallet_path),
            "--node",
            self.nodes[0].url,
            "--json",
            *args,
        ]
        done = subprocess.run(  # noqa: S603 - a fixed command, arguments as a list
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise DevnetCommandError(f"tally-wallet {args[0]}: {done.stderr.strip()}")
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def faucet(self, address: str, amount: str) -> dict[str, Any]:
        """Pay ``amount`` TLY to ``address`` from the dev wallet and confirm it in a block on
        node 0 (as ``nigiri faucet`` does); the txid and the block."""
        sent = self.wallet("send", address, amount)
        txid = str(sent.get("txid", ""))
        hashes = self.mine(1)
        return {"txid": txid, "address": address, "amount": amount, "block": hashes[-1]}
