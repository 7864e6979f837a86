"""Real ``tally-node run`` processes on loopback for functional tests, and a small HTTP client.

``NodeProcess`` starts the installed ``tally-node`` command (the same entry point a user runs)
with a fresh data directory and a free port, waits until ``/api/v1/info`` answers, and stops it
with SIGTERM (or SIGKILL on request). Its log is kept in the data directory for failure messages.
``NodeProcess.client`` is the SDK's typed client of it (``client.http.Client``, with its admin
token); ``http`` and ``get``/``post_json``/``post_raw`` stay for tests that look at the raw
answer (status, headers, bytes) or send what no client would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.http import Client, read_datadir
from consensus import encode_address, get_params


def tally_node_command() -> list[str]:
    """The installed ``tally-node`` (next to this Python, as in the virtual environment)."""
    exe = Path(sys.executable).parent / "tally-node"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("tally-node")
    if found is None:
        raise FileNotFoundError("tally-node is not installed (run scripts/test.sh)")
    return [found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the kernel's ephemeral range.

    ``tally-devnet --base-port P`` binds P, P+1, ...: ports next to one ``free_port()`` lie in
    the range that ``bind(0)`` and every outgoing connection draw from, so under a busy test run
    (two pytest processes, thousands of connections) one of them is often taken by the time the
    devnet binds it. Below that range nothing is handed out by the kernel; the block is chosen at
    random among 10,000 and up, and checked free."""
    rng = random.SystemRandom()
    top = _ephemeral_low() - count
    for _ in range(200):
        base = rng.randrange(10_000, top)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports below {top + count}")


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as err:
        return Response(err.code, err.read(), dict(err.headers))


def address_of(pubkey_hash: bytes, network: str = "regtest") -> str:
    return encode_address(pubkey_hash, get_params(network))


class NodeProcess:
    """One ``tally-node run`` process."""

    def __init__(
        self, datadir: Path, *args: str, network: str = "regtest", env: dict[str, str] | None = None
    ) -> None:
        self.datadir = datadir
        self.network = network
        self.port = free_port()
        self.args = list(args)
        # Loopback nodes share 127.0.0.1: scored per listening URL, as the devnet does (SPEC 3.4)
        self.env = {"TALLY_WHITELIST": "127.0.0.0/8", **os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = datadir.parent / f"{datadir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> NodeProcess:
        self.datadir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *tally_node_command(),
                "run",
                "--network",
                self.network,
                "--datadir",
                str(self.datadir),
                "--port",
                str(self.port),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tally-node exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http(self.url + "/api/v1/info", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"tally-node did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def token(self) -> str:
        return (self.datadir / ".cookie").read_text().strip().split(":", 1)[1]

    @property
    def client(self) -> Client:
        """The SDK's client of this node, with its admin token when it has written one."""
        _, token = read_datadir(self.datadir)
        return Client(self.url, token=token)

    def get(self, path: str, **kw: Any) -> Response:
        return http(self.url + path, **kw)

    def post_json(self, path: str, data: Any, admin: bool = False) -> Response:
        headers = {"Content-Type": "application/json"}
        if admin:
            headers["Authorization"] = f"Bearer {self.token}"
        return http(self.url + path, "POST", json.dumps(data).encode(), headers)

    def post_raw(
        self, path: str, body: bytes, content_type: str = "application/msgpack"
    ) -> Response:
        return http(self.url + path, "POST", body, {"Content-Type": content_type})

    def generate(self, count: int, address: str) -> list[str]:
        return self.client.generate(count, address)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop()
