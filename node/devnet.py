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
``up`` on a stopped devnet resumes the same chains; on a running one it only prints.
``down`` stops every node it started (SIGTERM, then SIGKILL for the whole process group) and
leaves no process behind. With ``--network test`` the nodes mine real proof of work with
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

    def up(self, nodes: int, base_port: int | None, block_time: float, network: str) -> int:
        state = self.load()
        running = [n for n in state.get("nodes", []) if _alive(n["pid"])]
        if running:
            print(f"devnet in {self.dir} is already running ({len(running)} nodes)")
            self.print_summary(state)
            return 0
        if state:
            nodes = len(state["nodes"])
            network = state["network"]
            base_port = state["base_port"]
            print(f"resuming the {network} devnet in {self.dir} ({nodes} nodes)")
        else:
            if base_port is None:
                base_port = get_params(network).default_port + 100
            print(f"creating a {network} devnet of {nodes} nodes in {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        entries: list[dict[str, Any]] = []
        for i in range(nodes):
            port = base_port + i
            datadir = self.dir / f"node{i}"
            peers = [f"--peer=http://127.0.0.1:{base_port + j}" for j in range(i)]
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
                    "--whitelist=127.0.0.0/8",
                    *peers,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            entries.append(
                {
                    "index": i,
                    "pid": proc.pid,
                    "port": port,
                    "url": f"http://127.0.0.1:{port}",
                    "datadir": str(datadir),
                }
            )
        state = {
            "network": network,
            "base_port": base_port,
            "block_time": block_time,
            "nodes": entries,
        }
        self.save(state)
        try:
            self._wait_ready(entries, started)
            self._prepare_wallet(state)
        except BaseException:
            print("bringing the devnet down again", file=sys.stderr)
            self.down(quiet=True)
            raise
        self.print_summary(state)
        print(f"(up in {time.monotonic() - started:.1f} s)")
        return 0

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
        for entry in state["nodes"]:
            if _alive(entry["pid"]):
                os.kill(entry["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 30
        for entry in state["nodes"]:
            while _alive(entry["pid"]) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry["pid"], signal.SIGKILL)  # its session: the PoW workers too
            if not quiet:
                print(f"  node {entry['index']} stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tally-devnet", description="A local Tally network.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start (or resume) the devnet")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--dir", default=".devnet")
    up.add_argument("--base-port", type=int, default=None)
    up.add_argument("--block-time", type=float, default=5.0)
    up.add_argument("--network", choices=["regtest", "test"], default="regtest")
    for name, text in (("status", "show each node's height and peers"), ("down", "stop it")):
        sub.add_parser(name, help=text).add_argument("--dir", default=".devnet")
    args = parser.parse_args(argv)
    devnet = Devnet(Path(args.dir))
    try:
        if args.command == "up":
            if not 1 <= args.nodes <= 20:
                raise DevnetError("--nodes must be between 1 and 20")
            return devnet.up(args.nodes, args.base_port, args.block_time, args.network)
        if args.command == "status":
            return devnet.status()
        return devnet.down()
    except (DevnetError, OSError, urllib.error.URLError) as err:
        print(f"tally-devnet: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
