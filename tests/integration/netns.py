"""Many real nodes, each in its own network namespace, on links with a delay (SPEC 7; issue 22).

The harness of ``tests/integration/test_netns_ten.py`` (10 nodes) and
``scripts/bench/bench_fifty.py`` (50 nodes), written once here. It needs root and iproute2's
``ip``, nothing else: this kernel has no ``sch_netem`` (``tc qdisc add ... netem`` answers
"Specified qdisc kind is unknown"; ``CONFIG_NET_SCH_NETEM`` is not set, nor ``fq``, and no
``nft``/``iptables`` binary is installed), so the delay is made in user space, on a TUN device,
by ``python netns.py delay`` (``Delayer``, below): docs/DECISIONS.md, "Fifty nodes: the delayed
links without netem".

The network (``Net.build``), all in namespaces named ``<run>-...`` where ``<run>`` is
``tally-ns-<pid of the owner>-<random>`` (``PREFIX``), so a leftover is found and removed by
``sweep_stale`` (the owner's process is gone) or by hand (``ip netns list | grep tally-ns-``):

- a router namespace ``<run>-r``: forwarding on, reverse-path filter off, a TUN device ``t0``
  and the delayer attached to it, and one veth end ``v<i>`` per node, each with the router's
  address ``10.<s>.<t>.254/32`` and a route ``10.<s>.<t>.<i+1>/32`` to its node;
- one namespace ``<run>-n<i>`` per node: ``eth0`` (the other veth end) with the node's own
  address ``10.<s>.<t>.<i+1>/32``, a route to the router and a default route through it;
- policy routing in the router makes the graph the physical network: a packet that comes in on
  ``v<i>`` for the address of a neighbour ``j`` of ``i`` in the graph is routed into ``t0``
  (table 100), where the delayer holds it for the link's latency (``delay ± jitter``, in order
  per source and destination, as a FIFO link keeps it) and writes it back; a packet coming out
  of ``t0`` takes the main table to its destination's veth. A packet from ``v<i>`` to any other
  node is refused (``prohibit``: the sender's ``connect`` fails at once), so the nodes' address
  exchange cannot add links and the graph keeps the diameter it was built with. Traffic between
  the router's own address and a node is local to the router and is never delayed: that is how
  the harness talks to the nodes.

Nothing is added to the machine's own namespace: the harness's HTTP sockets are created inside
the router namespace by a short-lived thread that ``setns``-es into it (``ns_socket``; a socket
belongs to the namespace it was created in), so the harness polls every node's API directly,
with no subprocess per request.

Each node is ``tally-node run --network regtest --bind <its address> --port 18855 --peer <the
URLs of its lower-numbered neighbours>`` started through ``ip netns exec`` (its ``Host`` check
accepts its bind address, which is what the others and the harness use). ``Net.close`` stops
the nodes (SIGTERM, then SIGKILL), stops the delayer, kills whatever still runs in the
namespaces and deletes them; the owner calls it in a ``finally`` and registers it with
``atexit``; it is idempotent.

Left to the callers: what is measured or asserted, and the graph (``random_graph``, ``line``;
``diameter`` and ``distances`` measure it).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import functools
import heapq
import json
import math
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import stat
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "tally-ns-"
PORT = 18855
API = "/api/v1"
ROUTER_HOST = 254
DELAY_TABLE = "100"
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_NODES = 200  # addresses .1 .. .200 of one /24, the router at .254

ROUTER_SYSCTLS = """
for name, value in (
    ("ipv4/ip_forward", "1"),
    ("ipv4/conf/all/rp_filter", "0"),
    ("ipv4/conf/default/rp_filter", "0"),
):
    with open("/proc/sys/net/" + name, "w") as f:
        f.write(value)
"""
"""Run in the router's namespace: forward, and accept packets the delayer writes back on t0."""

Graph = list[set[int]]


# --- graphs ------------------------------------------------------------------------------------


def line(n: int) -> Graph:
    """Nodes 0 .. n-1 in a line: node 0 and node n-1 are n-1 hops apart."""
    return [{j for j in (i - 1, i + 1) if 0 <= j < n} for i in range(n)]


def random_graph(n: int, min_degree: int, max_degree: int, rng: random.Random) -> Graph:
    """A connected random graph, every degree within [min_degree, max_degree].

    A ring through a random permutation (connected, degree 2), then random edges between
    nodes below ``min_degree`` and nodes below ``max_degree`` until every node has
    ``min_degree``; each node then gains at random up to ``max_degree`` with probability 1/2
    per extra edge, so degrees spread over the range."""
    if not 2 <= min_degree <= max_degree < n:
        raise ValueError("need 2 <= min_degree <= max_degree < n")
    order = list(range(n))
    rng.shuffle(order)
    g: Graph = [set() for _ in range(n)]
    for a, b in zip(order, order[1:] + order[:1], strict=True):
        g[a].add(b)
        g[b].add(a)

    def grow(node: int) -> bool:
        candidates = [j for j in range(n) if j != node and j not in g[node]]
        candidates = [j for j in candidates if len(g[j]) < max_degree]
        if not candidates:
            return False
        low = [j for j in candidates if len(g[j]) < min_degree]
        other = rng.choice(low or candidates)
        g[node].add(other)
        g[other].add(node)
        return True

    for node in rng.sample(range(n), n):
        while len(g[node]) < min_degree and grow(node):
            pass
    for node in rng.sample(range(n), n):
        while len(g[node]) < max_degree and rng.random() < 0.5 and grow(node):
            pass
    return g


def distances(g: Graph, origin: int) -> list[int]:
    """Hops from ``origin`` to every node (breadth-first); -1 where unreachable."""
    dist = [-1] * len(g)
    dist[origin] = 0
    todo = deque([origin])
    while todo:
        at = todo.popleft()
        for nxt in g[at]:
            if dist[nxt] < 0:
                dist[nxt] = dist[at] + 1
                todo.append(nxt)
    return dist


def diameter(g: Graph) -> int:
    """The largest number of hops between two nodes; ValueError if the graph is disconnected."""
    worst = 0
    for origin in range(len(g)):
        dist = distances(g, origin)
        if min(dist) < 0:
            raise ValueError("the graph is not connected")
        worst = max(worst, max(dist))
    return worst


def edges(g: Graph) -> list[tuple[int, int]]:
    return sorted((a, b) for a in range(len(g)) for b in g[a] if a < b)


# --- iproute2 and namespaces -------------------------------------------------------------------


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def namespaces() -> list[str]:
    """Names from ``ip netns list`` (each line is ``name`` or ``name (id: N)``)."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def remove_namespace(ns: str) -> None:
    """Kill every process in ``ns``, then delete it (its veth ends go with it)."""
    for _ in range(50):
        pids = [int(p) for p in ip("netns", "pids", ns, check=False).split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    ip("netns", "del", ns, check=False)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove the namespaces of earlier runs whose owning process is gone; their names."""
    removed = []
    for ns in namespaces():
        found = re.fullmatch(rf"{re.escape(PREFIX)}(\d+)-[0-9a-f]+-\w+", ns)
        if found and not pid_alive(int(found.group(1))):
            remove_namespace(ns)
            removed.append(ns)
    return removed


TUN_DEVICE = Path("/dev/net/tun")


def ensure_tun_device() -> bool:
    """Whether ``/dev/net/tun`` is there, making it (root: character device 10, 200, as
    containers leave it out) when it is missing."""
    if TUN_DEVICE.exists():
        return True
    try:
        TUN_DEVICE.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(TUN_DEVICE, 0o666 | stat.S_IFCHR, os.makedev(10, 200))
    except OSError:
        return False
    return TUN_DEVICE.exists()


def netns_problem() -> str | None:
    """Why this machine cannot build the network (not root, no ``ip``, no netns), or None."""
    if os.geteuid() != 0:
        return "needs root: it creates network namespaces with `ip netns`"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` (scripts/test.sh installs it as root)"
    if not ensure_tun_device():
        return "needs /dev/net/tun (the delayed links use a TUN device) and could not make it"
    probe = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "set", "lo", "up")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        return f"`ip netns` does not work here: {err}"
    finally:
        remove_namespace(probe)
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def _enter(ns: str) -> None:
    """Move the calling thread into namespace ``ns`` (``setns(2)``)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def ns_socket(ns: str) -> socket.socket:
    """A TCP socket that lives in namespace ``ns``, made by a thread that enters it."""
    made: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            _enter(ns)
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except BaseException as err:  # handed to the caller
            made.append(err)

    worker = threading.Thread(target=make, name=f"setns-{ns}")
    worker.start()
    worker.join(10)
    if not made:
        raise OSError(f"could not make a socket in {ns}")
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


def run_in(ns: str, *argv: str) -> None:
    """Run a short command inside ``ns`` (``ip netns exec``); raise if it fails."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {ns} failed: {done.stderr.strip()}")


# --- a keep-alive HTTP client on a socket in a namespace ---------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection to ``host:port``, its socket made in ``ns``."""

    def __init__(self, ns: str, host: str, port: int, timeout: float = 30) -> None:
        self.host, self.port = host, port
        self.sock = ns_socket(ns)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def raw(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        """The request's bytes."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, bytes]:
        """Read one complete answer (status, body)."""
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            more = self.sock.recv(65536)
            if not more:
                raise ConnectionError("the server closed the connection")
            buf += more
        head = buf[:end].lower()
        status = int(head[9:12])
        found = re.search(rb"\r\ncontent-length: *(\d+)", head)
        if found is None:
            raise ConnectionError("an answer without Content-Length")
        need = end + 4 + int(found.group(1))
        while len(buf) < need:
            more = self.sock.recv(65536)
            if not more:
                raise ConnectionError("the server closed the connection")
            buf += more
        self.buf = buf[need:]
        return status, buf[end + 4 : need]

    def request(self, data: bytes) -> tuple[int, bytes]:
        self.send(data)
        return self.answer()

    def call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        return self.request(self.raw(method, path, body, headers))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def arrivals(
    conns: Sequence[Conn],
    probes: Sequence[bytes],
    done: Callable[[int, bytes], bool],
    t0: float,
    interval: float,
    timeout: float,
) -> list[float | None]:
    """Seconds after ``t0`` (``time.perf_counter``) at which each connection's probe first
    satisfies ``done``; each connection is asked again ``interval`` s after its last ask, all
    at once (one ``select`` loop), and no more once it answered yes. None: not within
    ``timeout``."""
    got: list[float | None] = [None] * len(conns)
    next_ask = [0.0] * len(conns)
    waiting: set[int] = set()
    by_fd = {c.sock.fileno(): i for i, c in enumerate(conns)}
    deadline = t0 + timeout
    while True:
        now = time.perf_counter()
        if all(g is not None for g in got) or now > deadline:
            break
        for i, conn in enumerate(conns):
            if got[i] is None and i not in waiting and now >= next_ask[i]:
                conn.send(probes[i])
                next_ask[i] = now + interval
                waiting.add(i)
        idle = [next_ask[i] for i in range(len(conns)) if got[i] is None and i not in waiting]
        pause = max(0.0, min([*idle, now + interval]) - time.perf_counter())
        if waiting:
            ready, _, _ = select.select([conns[i].sock for i in waiting], [], [], pause)
        else:
            ready = []
            time.sleep(pause)
        for sock in ready:
            i = by_fd[sock.fileno()]
            status, body = conns[i].answer()
            waiting.discard(i)
            if done(status, body):
                got[i] = time.perf_counter() - t0
    for i in list(waiting):  # drain, so the connections stay in step
        conns[i].answer()
    return got


# --- the network --------------------------------------------------------------------------------


@dataclass
class Node:
    i: int
    ns: str
    address: str
    datadir: Path
    proc: subprocess.Popen[bytes] | None = None
    conn: Conn | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{PORT}"

    @property
    def log_path(self) -> Path:
        return self.datadir.parent / f"n{self.i}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def token(self) -> str:
        return (self.datadir / ".cookie").read_text().strip().split(":", 1)[1]


@dataclass
class Net:
    """``len(graph)`` nodes on links delayed by ``delay_ms`` ± ``jitter_ms``; see the module
    docstring. ``build``, ``start_nodes``, then ``close`` (always)."""

    root: Path
    graph: Graph
    delay_ms: float
    jitter_ms: float = 0.0
    seed: int = 1
    node_env: dict[str, str] = field(default_factory=dict)
    run: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}")
    net: str = field(
        default_factory=lambda: f"10.{1 + secrets.randbelow(254)}.{secrets.randbelow(256)}"
    )
    nodes: list[Node] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    delayer: subprocess.Popen[bytes] | None = None
    closed: bool = False

    @property
    def router(self) -> str:
        return f"{self.run}-r"

    @property
    def router_address(self) -> str:
        return f"{self.net}.{ROUTER_HOST}"

    @property
    def stats_path(self) -> Path:
        return self.root / "delayer.json"

    def _add_ns(self, ns: str) -> None:
        ip("netns", "add", ns)
        self.created.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")

    def build(self) -> None:
        n = len(self.graph)
        if not 1 <= n <= MAX_NODES:
            raise ValueError(f"1 to {MAX_NODES} nodes")
        self.root.mkdir(parents=True, exist_ok=True)
        r = self.router
        self._add_ns(r)
        run_in(r, sys.executable, "-c", ROUTER_SYSCTLS)
        ip("-n", r, "tuntap", "add", "dev", "t0", "mode", "tun")
        ip("-n", r, "link", "set", "t0", "up")
        ip("-n", r, "route", "add", "default", "dev", "t0", "table", DELAY_TABLE)
        ip("-n", r, "rule", "add", "pref", "100", "iif", "t0", "lookup", "main")
        self._start_delayer()
        for i in range(n):
            ns = f"{self.run}-n{i}"
            self._add_ns(ns)
            tmp = f"tns{secrets.token_hex(4)}"  # renamed to eth0 once inside the node's namespace
            ip("link", "add", tmp, "netns", ns, "type", "veth", "peer", "name", f"v{i}", "netns", r)
            ip("-n", ns, "link", "set", tmp, "name", "eth0")
            address = f"{self.net}.{i + 1}"
            ip("-n", ns, "addr", "add", f"{address}/32", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "route", "add", self.router_address, "dev", "eth0")
            ip("-n", ns, "route", "add", "default", "via", self.router_address, "dev", "eth0")
            ip("-n", r, "addr", "add", f"{self.router_address}/32", "dev", f"v{i}")
            ip("-n", r, "link", "set", f"v{i}", "up")
            ip("-n", r, "route", "add", f"{address}/32", "dev", f"v{i}")
            for j in sorted(self.graph[i]):
                dest = f"{self.net}.{j + 1}"
                ip(
                    "-n",
                    r,
                    "rule",
                    "add",
                    "pref",
                    "200",
                    "iif",
                    f"v{i}",
                    "to",
                    dest,
                    "lookup",
                    DELAY_TABLE,
                )
            ip("-n", r, "rule", "add", "pref", "300", "iif", f"v{i}", "prohibit")
            self.nodes.append(Node(i, ns, address, self.root / f"n{i}"))

    def _start_delayer(self) -> None:
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "delay",
            "--dev",
            "t0",
            "--delay-ms",
            str(self.delay_ms),
            "--jitter-ms",
            str(self.jitter_ms),
            "--seed",
            str(self.seed),
            "--stats",
            str(self.stats_path),
        ]
        with (self.root / "delayer.log").open("ab") as log:
            self.delayer = subprocess.Popen(
                ["ip", "netns", "exec", self.router, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while "LOWER_UP" not in ip("-n", self.router, "link", "show", "t0"):
            if self.delayer.poll() is not None or time.monotonic() > deadline:
                text = (self.root / "delayer.log").read_text(errors="replace")
                raise RuntimeError(f"the delayer did not attach to t0:\n{text}")
            time.sleep(0.05)

    def start_nodes(self, timeout: float = 300) -> None:
        """Start every node (neighbours below it as ``--peer``), wait until each answers."""
        from tests.functional.node_process import tally_node_command

        for node in self.nodes:
            node.datadir.mkdir(parents=True)
            lower = sorted(j for j in self.graph[node.i] if j < node.i)
            peers = [a for j in lower for a in ("--peer", self.nodes[j].url)]
            settings = ["--network", "regtest", "--datadir", str(node.datadir)]
            settings += ["--bind", node.address, "--port", str(PORT), "--log-level", "info"]
            with node.log_path.open("ab") as log:
                node.proc = subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        node.ns,
                        *tally_node_command(),
                        "run",
                        *settings,
                        *peers,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.node_env},
                    start_new_session=True,
                )
        for node in self.nodes:
            self.wait(functools.partial(self._connect, node), f"n{node.i} to answer", timeout)

    def _connect(self, node: Node) -> bool:
        conn = Conn(self.router, node.address, PORT)
        try:
            status, _ = conn.call("GET", API + "/info")
        except OSError:
            conn.close()
            raise
        if status != 200:
            conn.close()
            return False
        node.conn = conn
        return True

    # --- asking the nodes (from the router's namespace, never delayed) ---

    def text(self, node: Node, path: str) -> str:
        """The body of a 200 answer to ``GET /api/v1<path>``."""
        assert node.conn is not None
        status, body = node.conn.call("GET", API + path)
        if status != 200:
            raise AssertionError(f"n{node.i} GET {path}: {status} {body[:300]!r}")
        return body.decode()

    def get(self, node: Node, path: str) -> Any:
        return json.loads(self.text(node, path))

    def post(
        self, node: Node, path: str, body: bytes, content_type: str, admin: bool = False
    ) -> Any:
        assert node.conn is not None
        headers = {"Content-Type": content_type}
        if admin:
            headers["Authorization"] = f"Bearer {node.token}"
        status, answer = node.conn.call("POST", API + path, body, headers)
        if status != 200:
            raise AssertionError(f"n{node.i} POST {path}: {status} {answer[:300]!r}")
        return json.loads(answer) if answer else None

    def generate_request(self, node: Node, count: int, address: str) -> bytes:
        assert node.conn is not None
        body = json.dumps({"count": count, "address": address}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {node.token}"}
        return node.conn.raw("POST", API + "/admin/generate", body, headers)

    def generate(self, node: Node, count: int, address: str) -> list[str]:
        assert node.conn is not None
        status, body = node.conn.request(self.generate_request(node, count, address))
        if status != 200:
            raise AssertionError(f"n{node.i} generate: {status} {body[:300]!r}")
        hashes: list[str] = json.loads(body)["hashes"]
        return hashes

    def height(self, node: Node) -> int:
        return int(self.get(node, "/blocks/tip/height"))

    def connected(self, node: Node) -> set[int]:
        """Which nodes ``node`` is connected to (by index), from its ``/peers``."""
        by_url = {n.url: n.i for n in self.nodes}
        urls = {p["url"].rstrip("/") for p in self.get(node, "/peers")["connected"]}
        return {by_url.get(u, -1) for u in urls}

    def topology_formed(self) -> bool:
        return all(self.connected(node) == self.graph[node.i] for node in self.nodes)

    def link_rtt(self, a: int, b: int, count: int) -> list[float]:
        """Seconds of ``count`` HTTP round trips (``GET /blocks/tip/height``) from node ``a``'s
        namespace to neighbour ``b``'s API: each crosses the delayed link twice."""
        conn = Conn(self.nodes[a].ns, self.nodes[b].address, PORT)
        try:
            data = conn.raw("GET", API + "/blocks/tip/height")
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                status, body = conn.request(data)
                times.append(time.perf_counter() - t0)
                if status != 200:
                    raise AssertionError(f"n{a} -> n{b}: {status} {body[:200]!r}")
            return times
        finally:
            conn.close()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- n{n.i} ({n.url}) ---\n{n.log()[-tail:]}" for n in self.nodes)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    raise AssertionError(f"n{node.i}'s node exited\n{node.log()[-6000:]}")
            if self.delayer is not None and self.delayer.poll() is not None:
                raise AssertionError("the delayer exited")
            try:
                last = condition()
            except (OSError, KeyError, ValueError, AssertionError) as err:
                last = err
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last!r})")

    def delayer_stats(self) -> dict[str, Any]:
        """Stop the delayer (SIGTERM) and read what it measured: packets, hold times."""
        if self.delayer is not None and self.delayer.poll() is None:
            self.delayer.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.delayer.wait(10)
        if self.stats_path.exists():
            stats: dict[str, Any] = json.loads(self.stats_path.read_text())
            return stats
        return {}

    def close(self) -> None:
        """Stop everything and delete every namespace of this run (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for node in self.nodes:
            if node.conn is not None:
                node.conn.close()
        stop_process_groups([node.proc for node in self.nodes], grace=20)
        if self.delayer is not None and self.delayer.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.delayer.pid, signal.SIGKILL)
            self.delayer.wait(10)
        for ns in reversed(self.created):
            remove_namespace(ns)
        left = [ns for ns in namespaces() if ns.startswith(self.run)]
        if left:
            raise RuntimeError(f"namespaces left behind: {left}")


def stop_process_groups(procs: Sequence[subprocess.Popen[Any] | None], grace: float) -> None:
    """SIGTERM each running process's group, wait ``grace`` seconds for each, then SIGKILL the
    group of any still running (every node runs in its own session)."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        if proc is not None:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def percentile_time(times: Sequence[float | None], fraction: float) -> float | None:
    """When ``fraction`` of the nodes had it: the k-th smallest arrival, k = ceil(fraction*n)
    (None if fewer arrived)."""
    k = max(1, math.ceil(fraction * len(times) - 1e-9))
    have = sorted(t for t in times if t is not None)
    return have[k - 1] if len(have) >= k else None


# --- the delayer: a user-space netem on a TUN device -------------------------------------------


class Delayer:
    """Holds every packet read from the TUN device for ``delay ± jitter`` seconds, then writes
    it back. Per (source, destination) the release times never go backwards (a link is a FIFO:
    jitter reorders nothing, as netem with a rate). Records how long each packet was held."""

    def __init__(self, dev: str, delay: float, jitter: float, seed: int) -> None:
        self.fd = os.open(TUN_DEVICE, os.O_RDWR)
        ifr = struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(self.fd, TUNSETIFF, ifr)
        os.set_blocking(self.fd, False)
        self.delay, self.jitter = delay, jitter
        self.rng = random.Random(seed)
        self.heap: list[tuple[float, int, float, bytes]] = []
        self.last: dict[bytes, float] = {}
        self.count = 0
        self.bytes = 0
        self.held: list[float] = []  # seconds actually held, a sample of at most 200,000
        self.late: list[float] = []  # seconds written after the planned time
        self.stop = False

    def run(self) -> None:
        seq = 0
        while not self.stop:
            now = time.perf_counter()
            while self.heap and self.heap[0][0] <= now:
                due, _, got, packet = heapq.heappop(self.heap)
                with contextlib.suppress(OSError):
                    os.write(self.fd, packet)
                done = time.perf_counter()
                if len(self.held) < 200_000:
                    self.held.append(done - got)
                    self.late.append(done - due)
                now = done
            wait = min(0.2, self.heap[0][0] - now) if self.heap else 0.2
            try:
                ready, _, _ = select.select([self.fd], [], [], max(0.0, wait))
            except InterruptedError:
                continue
            if not ready:
                continue
            while True:
                try:
                    packet = os.read(self.fd, 65536)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                got = time.perf_counter()
                flow = packet[12:20]
                hold = self.delay + (
                    self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0
                )
                due = max(got + max(0.0, hold), self.last.get(flow, 0.0))
                if len(self.last) > 100_000:
                    self.last.clear()
                self.last[flow] = due
                seq += 1
                heapq.heappush(self.heap, (due, seq, got, packet))
                self.count += 1
                self.bytes += len(packet)

    def stats(self) -> dict[str, Any]:
        def ms(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

        return {
            "packets": self.count,
            "bytes": self.bytes,
            "delay_ms": self.delay * 1e3,
            "jitter_ms": self.jitter * 1e3,
            "held_median_ms": ms(self.held, 0.5),
            "held_mean_ms": round(statistics.fmean(self.held) * 1e3, 3) if self.held else None,
            "held_p99_ms": ms(self.held, 0.99),
            "late_median_ms": ms(self.late, 0.5),
            "late_p99_ms": ms(self.late, 0.99),
            "late_max_ms": ms(self.late, 1.0),
        }


def delay_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="netns.py delay", description="hold packets on a TUN device")
    ap.add_argument("--dev", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args(argv)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)  # the network is not one of the loads measured
    delayer = Delayer(args.dev, args.delay_ms / 1e3, args.jitter_ms / 1e3, args.seed)

    def stop(signum: int, frame: Any) -> None:
        delayer.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"delaying {args.dev}: {args.delay_ms} ms ± {args.jitter_ms} ms", flush=True)
    delayer.run()
    Path(args.stats).write_text(json.dumps(delayer.stats(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["delay"]:
        sys.exit(delay_main(sys.argv[2:]))
    sys.exit("usage: netns.py delay --dev DEV --delay-ms MS [--jitter-ms MS] --stats FILE")
