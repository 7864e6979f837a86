"""``tally-devnet``: a local network of nodes in one command, like ``anvil`` or ``nigiri start``.

    tally-devnet up [--nodes 3] [--dir .devnet] [--base-port P] [--block-time S]
                    [--network regtest|test]
    tally-devnet status [--dir .devnet]
    tally-devnet down [--dir .devnet]

``up`` starts N ``tally-node run`` processes in the background (each in its own session, its log
in ``<dir>/node<i>.log``), each connected to the ones before it, waits until they answer and see
each other, creates a dev wallet (``<dir>/wallet.json``, password ``devnet``) on the first run,
funds it on regtest (110 blocks, so 10 coinbases are spendable), turns on mining on node 0 (a
block every ``--block-time`` seconds, paid to the dev wallet), and prints the explorer URL, the
wallet path and three commands to paste. The state (ports, PIDs) is in ``<dir>/devnet.json``.
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

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from consensus import get_params

DEV_PASSWORD = "devnet"  # noqa: S105  # a throwaway local wallet, printed to the user
STATE_FILE = "devnet.json"
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


def _http(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
        return json.loads(response.read())


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
        return self.dir / "wallet.json"

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
                _http(f"{entry['url']}/api/v1/info")
                pending.pop(0)
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.1)
        # connected: every node but the first has at least one peer
        while time.monotonic() < deadline:
            counts = [_http(f"{e['url']}/api/v1/info")["peers"] for e in entries]
            if all(c >= 1 for c in counts) or len(entries) == 1:
                return
            time.sleep(0.2)
        raise DevnetError("the nodes did not connect to each other")

    def _wait_synced(self, entries: list[dict[str, Any]], started: float) -> None:
        """Until every node has caught up with the first one's height as it was when funded:
        ``up`` returns a devnet whose nodes agree, so a command pasted against any node sees the
        dev wallet's coins (SPEC 6: a command spanning nodes returns when they agree)."""
        deadline = started + START_TIMEOUT
        target = int(_http(f"{entries[0]['url']}/api/v1/info")["height"])
        while True:
            heights = [int(_http(f"{e['url']}/api/v1/info")["height"]) for e in entries]
            if min(heights) >= target:
                return
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"the nodes did not catch up with node 0 (heights {heights}, want {target})"
                )
            time.sleep(0.1)

    def _token(self, entry: dict[str, Any]) -> str:
        return (Path(entry["datadir"]) / ".cookie").read_text().strip().split(":", 1)[1]

    def _prepare_wallet(self, state: dict[str, Any]) -> None:
        first = state["nodes"][0]
        network = state["network"]
        if not self.wallet_path().exists():
            self.wallet("create", node=first["url"], network=network)
            print(f"created the dev wallet {self.wallet_path()} (password: {DEV_PASSWORD})")
        address = self.wallet("address", node=first["url"], network=network)["address"]
        state["address"] = address
        self.save(state)
        token = self._token(first)
        if network == "regtest":
            height = _http(f"{first['url']}/api/v1/info")["height"]
            if height < FUND_BLOCKS:
                _http(
                    f"{first['url']}/api/v1/admin/generate",
                    {"count": FUND_BLOCKS - height, "address": address},
                    token,
                )
        _http(
            f"{first['url']}/api/v1/admin/mining",
            {"enabled": True, "address": address, "block_time": state["block_time"]},
            token,
        )

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
        print()
        print("  try:")
        print(f"    {base} balance")
        print(f"    {base} send {state.get('address', '<address>')} 1.5 --wait")
        print(f"    {base} history")
        print()

    # --- status and down ------------------------------------------------------------------------

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
                info = _http(f"{entry['url']}/api/v1/info")
                print(
                    f"  node {entry['index']}  {entry['url']}  height {info['height']}  "
                    f"peers {info['peers']}  mempool {info['mempool']['count']}"
                )
            except (urllib.error.URLError, OSError, ValueError):
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


EPILOG = """\
environment: tally-devnet reads no variable of its own; the nodes it starts inherit the TALLY_*
variables of 'tally-node run' (TALLY_LOG_LEVEL=debug, say), and the flags it gives them
(--network, --datadir, --port, --peer) win over those."""


def build_parser() -> argparse.ArgumentParser:
    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=text,
            description=textwrap.fill(text, 79),
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--dir", default=".devnet", help="the devnet's folder (default: .devnet)")
        return p

    parser = argparse.ArgumentParser(
        prog="tally-devnet",
        description="A local Tally network.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    last = "default: the last up's, else "
    up = command(
        "up",
        "start the devnet, or bring a running one to these settings (restarting nodes that "
        "are not running); settings not given stay as the last 'up' left them",
    )
    up.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help=f"how many nodes, 1 to 20 ({last}{DEFAULTS['nodes']})",
    )
    up.add_argument(
        "--base-port",
        type=int,
        metavar="P",
        help=f"node i listens on P+i ({last}the network's port + 100: 18944 on regtest)",
    )
    up.add_argument(
        "--block-time",
        type=float,
        metavar="S",
        help=f"node 0 mines a block every S seconds ({last}{DEFAULTS['block_time']:g})",
    )
    up.add_argument(
        "--network",
        choices=["regtest", "test"],
        help=f"regtest, or test for real proof of work ({last}{DEFAULTS['network']}; "
        "an existing devnet keeps its network)",
    )
    command("status", "show each node's height and peers")
    command("down", "stop every node of the devnet")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    devnet = Devnet(Path(args.dir))
    try:
        if args.command == "up":
            if args.nodes is not None and not 1 <= args.nodes <= 20:
                raise DevnetError("--nodes must be between 1 and 20")
            if args.block_time is not None and not args.block_time > 0:
                raise DevnetError("--block-time must be a positive number of seconds")
            if args.base_port is not None and not 1024 <= args.base_port <= 65535 - 20:
                raise DevnetError("--base-port must be between 1024 and 65515")
            return devnet.up(args.nodes, args.base_port, args.block_time, args.network)
        if args.command == "status":
            return devnet.status()
        return devnet.down()
    except (DevnetError, OSError, urllib.error.URLError) as err:
        print(f"tally-devnet: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
