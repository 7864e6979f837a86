"""The devnet's processes: ``tally-devnet up``, ``status`` and ``down``.

``up`` starts N ``tally-node run`` processes in the background (each in its own session, its log
in ``<dir>/node<i>.log``), each connected to the ones before it, waits until they answer and see
each other, creates a dev wallet (``<dir>/wallet.json``, password ``devnet``) on the first run,
funds it on regtest (110 blocks, so 10 coinbases are spendable), turns on mining on node 0 (a
block every ``--block-time`` seconds, paid to the dev wallet), and prints the explorer URL, the
wallet path and three commands to paste. The state (ports, PIDs) is in ``<dir>/devnet.json``;
``<dir>/env`` sets ``TALLY_NODE``, ``TALLY_WALLET``, ``TALLY_WALLET_PASSWORD`` and ``PATH``, so
after ``source .devnet/env`` the wallet needs no flags. A new devnet's first ``up`` ends with the
snapshot ``reset`` returns to (``client.devnet.RESET_SNAPSHOT``).
``up`` on a stopped devnet resumes the same chains. On a running one it restarts the nodes that
are not running (a crashed node comes back, connected to the others), applies the settings given
(``--block-time`` re-tunes the miner; ``--nodes`` starts or stops nodes; ``--base-port`` moves
them) and prints each change; settings not given stay as the last ``up`` left them (kept in
``<dir>/devnet.json``, never reset to the defaults). ``down`` stops every node it started
(SIGTERM, then SIGKILL for the whole process group) and leaves no process behind; a second
``down`` says nothing was running. With ``--network test`` the nodes mine real proof of work with
retargeting (a block about every 30 s on one core) and the wallet is funded by mining.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from client import Client, ClientError
from client.devnet import DEV_PASSWORD, RESET_SNAPSHOT, STATE_FILE, WALLET_FILE, DevnetControl
from consensus import get_params

ENV_FILE = "env"
FUND_BLOCKS = 110
START_TIMEOUT = 60.0


DEFAULTS: dict[str, Any] = {"nodes": 3, "base_port": None, "block_time": 5.0, "network": "regtest"}
"""``up``'s settings when neither the command line nor an earlier ``up`` gave one (base port
None: the network's default port + 100, 18944 on regtest)."""


def settings_of(state: dict[str, Any]) -> dict[str, Any]:
    """The settings the last ``up`` used (``DEFAULTS`` for a devnet never brought up)."""
    if not state:
        return dict(DEFAULTS)
    return {
        "nodes": int(state.get("node_count", len(state.get("nodes", [])))),
        "base_port": state.get("base_port"),
        "block_time": float(state.get("block_time", DEFAULTS["block_time"])),
        "network": state.get("network", DEFAULTS["network"]),
    }


class DevnetError(Exception):
    """Something the user must fix; printed as one line."""


def _bin(name: str) -> str:
    """The command installed next to this Python (the virtual environment's)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _client(entry: dict[str, Any]) -> Client:
    """The client of a devnet node, with its admin token once the node has written one."""
    token_file = Path(entry["datadir"]) / ".cookie"
    token = None
    if token_file.exists():
        token = token_file.read_text().strip().split(":", 1)[-1]
    return Client(entry["url"], token=token, timeout=600)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


class Devnet:
    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        self.state_path = self.dir / STATE_FILE

    # --- state ----------------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {}
        state: dict[str, Any] = json.loads(self.state_path.read_text())
        return state

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def wallet_path(self) -> Path:
        return self.dir / WALLET_FILE

    def wallet(self, *args: str, node: str, network: str) -> Any:
        env = {**os.environ, "TALLY_WALLET_PASSWORD": DEV_PASSWORD}
        command = [
            _bin("tally-wallet"),
            "--wallet",
            str(self.wallet_path()),
            "--node",
            node,
            "--network",
            network,
            "--json",
            *args,
        ]
        done = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, env=env, timeout=300, check=False
        )
        if done.returncode != 0:
            raise DevnetError(f"tally-wallet {args[0]} failed: {done.stderr.strip()}")
        return json.loads(done.stdout) if done.stdout.strip() else {}

    # --- up -------------------------------------------------------------------------------------

    def up(
        self,
        nodes: int | None = None,
        base_port: int | None = None,
        block_time: float | None = None,
        network: str | None = None,
    ) -> int:
        """Bring the devnet to the settings asked for (None: the last ones used, else the
        defaults): start what is not running, restart nodes whose port changed, stop nodes past
        ``nodes``, re-tune mining; print each change."""
        state = self.load()
        created = not state
        last = settings_of(state)
        if state and network is not None and network != last["network"]:
            raise DevnetError(
                f"the devnet in {self.dir} is a {last['network']} one; to make a {network} "
                f"devnet, use another --dir (or 'down' and remove {self.dir})"
            )
        wanted: dict[str, Any] = {
            "nodes": last["nodes"] if nodes is None else nodes,
            "base_port": last["base_port"] if base_port is None else base_port,
            "block_time": last["block_time"] if block_time is None else block_time,
            "network": last["network"] if network is None else network,
        }
        if wanted["base_port"] is None:
            wanted["base_port"] = get_params(wanted["network"]).default_port + 100
        old = {e["index"]: e for e in state.get("nodes", [])}
        alive = {i for i, e in old.items() if _alive(e["pid"])}
        if not state:
            print(f"creating a {wanted['network']} devnet of {wanted['nodes']} nodes in {self.dir}")
        elif not alive:
            print(f"resuming the {wanted['network']} devnet in {self.dir}")
        changes = [
            f"{label} {last[key]} -> {wanted[key]}"
            for key, label in (("nodes", "nodes"), ("base_port", "base port"))
            if state and last[key] != wanted[key]
        ]
        if state and last["block_time"] != wanted["block_time"]:
            changes.append(f"block time {last['block_time']:g} s -> {wanted['block_time']:g} s")
        self.dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        base = int(wanted["base_port"])
        entries: list[dict[str, Any]] = []
        fresh: list[dict[str, Any]] = []
        for i in sorted(set(old) | alive):
            entry = old[i]
            if i in alive and (i >= wanted["nodes"] or entry["port"] != base + i):
                self._stop_node(entry)
                changes.append(f"node {i} stopped" + (" (moved)" if i < wanted["nodes"] else ""))
                alive.discard(i)
        partial = bool(alive)  # some nodes run on: restart the others beside them
        count = int(wanted["nodes"])
        for i in range(count):
            if i in alive:
                entries.append(old[i])
                continue
            peers_of = [j for j in range(count) if j != i] if partial else list(range(i))
            entry = self._start_node(i, wanted["network"], base, peers_of)
            entries.append(entry)
            fresh.append(entry)
            if partial:
                changes.append(
                    f"node {i} restarted (it was not running)" if i in old else f"node {i} started"
                )
        state = {
            "network": wanted["network"],
            "base_port": base,
            "block_time": wanted["block_time"],
            "node_count": count,
            "nodes": entries,
            "address": state.get("address"),
        }
        self.save(state)
        try:
            self._wait_ready(entries, started)
            self._prepare_wallet(state)
            self._wait_synced(entries, started)
        except BaseException:
            print("stopping the nodes started now", file=sys.stderr)
            for entry in fresh:
                self._stop_node(entry)
            raise
        self.write_env(state)
        if created and wanted["network"] == "regtest":
            self.control(state).snapshot(RESET_SNAPSHOT, reserved=True)
        if not changes and not fresh:
            print(f"devnet in {self.dir} is already running ({count} nodes); nothing changed")
        elif changes:
            print("changed: " + "; ".join(changes))
        self.print_summary(state)
        if fresh:
            print(f"(up in {time.monotonic() - started:.1f} s)")
        return 0

    def _start_node(
        self, i: int, network: str, base_port: int, peers_of: list[int]
    ) -> dict[str, Any]:
        """Start node ``i`` in the background, connected to the nodes ``peers_of``."""
        port = base_port + i
        datadir = self.dir / f"node{i}"
        peers = [f"--peer=http://127.0.0.1:{base_port + j}" for j in peers_of]
        log = (self.dir / f"node{i}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603
            [
                _bin("tally-node"),
                "run",
                "--network",
                network,
                "--datadir",
                str(datadir),
                "--port",
                str(port),
                "--whitelist=127.0.0.0/8",  # loopback peers are scored per URL, not per IP
                *peers,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return {
            "index": i,
            "pid": proc.pid,
            "port": port,
            "url": f"http://127.0.0.1:{port}",
            "datadir": str(datadir),
        }

    @staticmethod
    def _stop_node(entry: dict[str, Any], timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL for its whole session (the PoW workers too)."""
        if _alive(entry["pid"]):
            os.kill(entry["pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(entry["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(entry["pid"], signal.SIGKILL)

    def _wait_ready(self, entries: list[dict[str, Any]], started: float) -> None:
        deadline = started + START_TIMEOUT
        pending = list(entries)
        while pending:
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"node {pending[0]['index']} did not answer: see {self.dir}/node"
                    f"{pending[0]['index']}.log"
                )
            entry = pending[0]
            if not _alive(entry["pid"]):
                raise DevnetError(
                    f"node {entry['index']} exited: see {self.dir}/node{entry['index']}.log"
                )
            try:
                _client(entry).info()
                pending.pop(0)
            except ClientError:
                time.sleep(0.1)
        # connected: every node but the first has at least one peer
        while time.monotonic() < deadline:
            counts = [_client(e).info().peers for e in entries]
            if all(c >= 1 for c in counts) or len(entries) == 1:
                return
            time.sleep(0.2)
        raise DevnetError("the nodes did not connect to each other")

    def _wait_synced(self, entries: list[dict[str, Any]], started: float) -> None:
        """Until every node has caught up with the first one's height as it was when funded:
        ``up`` returns a devnet whose nodes agree, so a command pasted against any node sees the
        dev wallet's coins (SPEC 6: a command spanning nodes returns when they agree)."""
        deadline = started + START_TIMEOUT
        target = _client(entries[0]).info().height
        while True:
            heights = [_client(e).info().height for e in entries]
            if min(heights) >= target:
                return
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"the nodes did not catch up with node 0 (heights {heights}, want {target})"
                )
            time.sleep(0.1)

    def _prepare_wallet(self, state: dict[str, Any]) -> None:
        first = state["nodes"][0]
        network = state["network"]
        if not self.wallet_path().exists():
            self.wallet("create", node=first["url"], network=network)
            print(f"created the dev wallet {self.wallet_path()} (password: {DEV_PASSWORD})")
        address = self.wallet("address", node=first["url"], network=network)["address"]
        state["address"] = address
        self.save(state)
        node = _client(first)
        if network == "regtest":
            height = node.info().height
            if height < FUND_BLOCKS:
                node.generate(FUND_BLOCKS - height, address)
        node.set_mining(True, address, state["block_time"])

    def control(self, state: dict[str, Any]) -> DevnetControl:
        """The toolkit over this devnet's nodes (``client.devnet``)."""
        return DevnetControl(self.dir, [_client(e) for e in state["nodes"]], state.get("address"))

    def env_path(self) -> Path:
        return self.dir / ENV_FILE

    def write_env(self, state: dict[str, Any]) -> Path:
        """``<dir>/env``: after ``source <dir>/env`` the wallet and the commands need no flags
        (SPEC 6). Values are shell-quoted; the file is rewritten by every ``up``."""
        first = state["nodes"][0]
        bin_dir = str(Path(sys.executable).parent)
        lines = [
            "# written by tally-devnet up: source this file to use the devnet without flags",
            f"export TALLY_NODE={shlex.quote(first['url'])}",
            f"export TALLY_WALLET={shlex.quote(str(self.wallet_path()))}",
            f"export TALLY_WALLET_PASSWORD={shlex.quote(DEV_PASSWORD)}",
            f"export TALLY_DEVNET_DIR={shlex.quote(str(self.dir))}",
            f'export PATH={shlex.quote(bin_dir)}:"$PATH"',
            "",
        ]
        path = self.env_path()
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines))
        tmp.replace(path)
        return path

    def print_summary(self, state: dict[str, Any]) -> None:
        first = state["nodes"][0]
        wallet = shlex.quote(str(self.wallet_path()))
        node = first["url"]
        prefix = f"TALLY_WALLET_PASSWORD={DEV_PASSWORD} {shlex.quote(_bin('tally-wallet'))}"
        base = f"{prefix} --wallet {wallet} --node {node} --network {state['network']}"
        print()
        print(f"  explorer:  {node}/")
        for entry in state["nodes"]:
            print(f"  node {entry['index']}:    {entry['url']}  (data in {entry['datadir']})")
        print(f"  wallet:    {self.wallet_path()}  (password: {DEV_PASSWORD})")
        print(
            f"  env:       source {shlex.quote(str(self.env_path()))}  (then: tally-wallet balance)"
        )
        print()
        print("  try:")
        print(f"    {base} balance")
        print(f"    {base} send {state.get('address', '<address>')} 1.5 --wait")
        print(f"    {base} history")
        print()

    # --- status and down ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The devnet as ``--json`` prints it: its settings, files and each node's state."""
        state = self.load()
        nodes = []
        for entry in state.get("nodes", []):
            row: dict[str, Any] = {
                k: entry[k] for k in ("index", "url", "datadir", "pid") if k in entry
            }
            row["running"] = _alive(entry["pid"])
            if row["running"]:
                try:
                    info = _client(entry).info()
                    row.update(height=info.height, peers=info.peers, mempool=info.mempool.count)
                except ClientError:
                    row["running"] = False
            nodes.append(row)
        return {
            "dir": str(self.dir),
            "network": state.get("network"),
            "env": str(self.env_path()),
            "wallet": str(self.wallet_path()),
            "address": state.get("address"),
            "nodes": nodes,
        }

    def status(self) -> int:
        state = self.load()
        if not state:
            print(f"no devnet in {self.dir}")
            return 1
        print(f"{state['network']} devnet in {self.dir}")
        for entry in state["nodes"]:
            if not _alive(entry["pid"]):
                print(f"  node {entry['index']}  {entry['url']}  stopped")
                continue
            try:
                info = _client(entry).info()
                print(
                    f"  node {entry['index']}  {entry['url']}  height {info.height}  "
                    f"peers {info.peers}  mempool {info.mempool.count}"
                )
            except ClientError:
                print(
                    f"  node {entry['index']}  {entry['url']}  not answering (pid {entry['pid']})"
                )
        return 0

    def down(self, quiet: bool = False) -> int:
        state = self.load()
        if not state:
            if not quiet:
                print(f"no devnet in {self.dir}")
            return 0
        running = [e for e in state["nodes"] if _alive(e["pid"])]
        for entry in running:
            os.kill(entry["pid"], signal.SIGTERM)
        for entry in state["nodes"]:
            self._stop_node(entry)  # waits for the SIGTERM above; SIGKILLs the rest
        if quiet:
            return 0
        if not running:
            print(f"nothing was running in {self.dir} (its nodes were already stopped)")
        for entry in running:
            print(f"  node {entry['index']} stopped")
        return 0
