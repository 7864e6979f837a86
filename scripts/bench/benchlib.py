"""Shared pieces of the process-level benchmarks (``bench_node``, ``bench_sync``,
``bench_gossip``, ``bench_accept``) and of ``scripts/bench/run``.

- ``BenchNode``: a ``tests.functional.node_process.NodeProcess`` that polls for readiness every
  10 ms and reports how long its start took, its resident memory, and is killed at exit
  (every node started here is registered and its process group killed if still alive).
- ``Conn``: a minimal keep-alive HTTP/1.1 client on a raw socket (``TCP_NODELAY``), so that the
  client's own cost stays small next to the server's.
- Chain data directories: ``chain_datadirs(heights)`` builds ONE regtest chain through the real
  validation (``tests.helpers.ChainBuilder``) and writes LevelDB data directories
  (``<dir>/chainstate``) holding its first ``h`` blocks for every requested ``h``. Block times are
  ``genesis_time + height`` seconds, so they are in the past of the real clock and a real node can
  also receive these blocks over P2P (``bench_sync``). The "plain" chain is the "long" chain of
  ``bench_chainstate.py``: blocks are mined to key 0 except the coinbases of heights 10..50 step
  10 (key 2: the "small" address); from height 101 every block moves a coin of key 1 to itself for
  a fee of 1 (regtest's subsidy ends at height 4,950 and a zero-value coinbase is invalid). The
  "loaded" chain adds, from height 110, to every 10th block 20 spends of the previous fan-out's
  coins (1 in, 1 out) and a new fan-out of 20 coins: 22 transactions, 41 signatures in those
  blocks. Directories are cached under ``$TALLY_BENCH_CACHE`` when it is set (the runner sets
  it, so the chain is built once per run), else under a temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consensus import Block, OutPoint, Transaction, TxOut  # noqa: E402
from tests.functional.node_process import (  # noqa: E402
    NodeProcess,
    address_of,
    http,
    tally_node_command,
)
from tests.helpers import REGTEST, ChainBuilder, Key, key, spend  # noqa: E402

__all__ = ["address_of", "http", "REGTEST", "key", "spend"]

CHAIN_VERSION = "2"  # bump when the chain's content changes (invalidates caches)
SMALL_HEIGHTS = (10, 20, 30, 40, 50)
LOAD_EVERY = 10
LOAD_START = 110
LOAD_FAN = 20
LOAD_AMOUNT = 100_000
LOAD_FEE = 1_000
MINER, MOVER, SMALL, TREASURY, FANNED, SINK = (key(i) for i in (0, 1, 2, 3, 4, 5))


# --- machine and output ------------------------------------------------------------------------


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def platform_info(load_before: list[float]) -> dict[str, Any]:
    """The machine fields every benchmark reports first (CPU, Python, platform, load)."""
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


def crypto_engine() -> str:
    return os.environ.get("TALLY_CRYPTO", "coincurve") or "coincurve"


def machine(load_before: list[float], **extra: Any) -> dict[str, Any]:
    return {
        **platform_info(load_before),
        "aiohttp": version("aiohttp"),
        "plyvel": version("plyvel"),
        "msgpack": version("msgpack"),
        **extra,
    }


def write_json(
    path: str | None,
    name: str,
    figures: dict[str, float],
    ratios: dict[str, float],
    targets: dict[str, dict[str, float]],
    info: dict[str, Any],
    series: dict[str, Any] | None = None,
    figure_digits: int = 4,
) -> None:
    if not path:
        return
    result: dict[str, Any] = {
        "name": name,
        "figures": {k: round(v, figure_digits) for k, v in figures.items()},
        "ratios": {k: round(v, 4) for k, v in ratios.items()},
        "targets": targets,
        "machine": info,
    }
    if series:
        result["series"] = series
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def verdict(targets: dict[str, dict[str, float]], name: str, value: float) -> str:
    t = targets.get(name)
    if t is None:
        return ""
    if "max" in t:
        return f"<= {t['max']:g}  {'ok' if value <= t['max'] else 'MISSED'}"
    return f">= {t['min']:g}  {'ok' if value >= t['min'] else 'MISSED'}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- node processes ----------------------------------------------------------------------------

_LIVE: list[BenchNode] = []


def _kill_all() -> None:
    for node in list(_LIVE):
        node.kill_quietly()


atexit.register(_kill_all)


def _on_term(signum: int, frame: Any) -> None:
    _kill_all()
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


class BenchNode(NodeProcess):
    """A ``tally-node run`` process: fast readiness polling, start-up time, memory."""

    def start(self, timeout: float = 120, poll: float = 0.01) -> BenchNode:
        self.datadir.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        began = time.perf_counter()
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
                "--log-level",
                "warning",
                *self.args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log_file.close()
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tally-node exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http(self.url + "/api/v1/info", timeout=5).status == 200:
                    self.startup_s = time.perf_counter() - began
                    return self
            except OSError:
                pass
            time.sleep(poll)
        raise TimeoutError(f"tally-node did not answer within {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        """VmRSS of the node's main process, MB (10^6 bytes)."""
        return _rss_kb(self.pid) * 1024 / 1e6

    def rss_children_mb(self) -> float:
        """VmRSS summed over the node's child processes (proof-of-work workers), MB."""
        total = 0
        for child in _children(self.pid):
            total += _rss_kb(child)
        return total * 1024 / 1e6

    def height(self) -> int:
        return self.client.tip_height()

    def add_peer(self, other: NodeProcess) -> None:
        self.client.add_peer(other.url)

    def close(self) -> None:
        """Stop (SIGTERM, then SIGKILL if it hangs) and forget."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=30)
            except Exception:
                self.kill_quietly()
        if self in _LIVE:
            _LIVE.remove(self)

    def kill_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(10)
        if self in _LIVE:
            _LIVE.remove(self)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.append(int(child))
                found += _children(int(child))
    return found


def run_command(args: Sequence[str], timeout: float = 900) -> tuple[float, str]:
    """Wall seconds of ``tally-node ARGS`` and its output; raises if it fails."""
    began = time.perf_counter()
    done = subprocess.run(
        [*tally_node_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"tally-node {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, done.stdout


# --- a minimal HTTP client ---------------------------------------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection; ``request`` sends prepared bytes, returns the answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, data: bytes) -> tuple[int, bytes]:
        sock = self.sock
        sock.sendall(data)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("the server closed the connection")
            buf += more
        head = buf[:end].lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ConnectionError("an answer without Content-Length")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        need = end + 4 + length
        while len(buf) < need:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("the server closed the connection")
            buf += more
        self.buf = buf[need:]
        return status, buf[end + 4 : need]

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request(get_bytes(self.port, path))

    def close(self) -> None:
        self.sock.close()


def get_bytes(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def post_bytes(
    port: int, path: str, body: bytes, content_type: str = "application/msgpack"
) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def median_latency(conn: Conn, path: str, n: int) -> float:
    """Median seconds of ``n`` GETs of ``path`` on ``conn`` (each must answer 200)."""
    data = get_bytes(conn.port, path)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, body = conn.request(data)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body[:200]!r}")
    return statistics.median(times)


# --- the chain ---------------------------------------------------------------------------------


class ClockChainBuilder(ChainBuilder):
    """``ChainBuilder`` whose block times are ``genesis_time + height`` (in the past)."""

    def next_block(self, txs: Sequence[Transaction] = (), fees: int = 0) -> Block:
        from tests.helpers import mine_block

        height = self.height + 1
        return mine_block(
            self.tip.hash(),
            height,
            txs,
            self.params.genesis_time + height,
            self.miner.pubkey_hash,
            self.params,
            fees,
        )


Coin3 = tuple[OutPoint, TxOut, Key]


def iter_chain(length: int, loaded: bool) -> Iterable[Block]:
    """Blocks 1..length of the benchmark chain (see the module docstring), one at a time;
    ``loaded`` adds the 22 transactions of every 10th block from height 110."""
    cb = ClockChainBuilder()
    line: Coin3 | None = None
    treasury: Coin3 | None = None
    fanned: list[Coin3] = []
    for height in range(1, length + 1):
        txs: list[Transaction] = []
        fees = 0
        if height > REGTEST.coinbase_maturity:
            if line is None:
                line = (*cb.coinbase_coin(1)[:2], MINER)
            tx = spend([line], [TxOut(line[1].amount - 1, MOVER.pubkey_hash)])
            txs.append(tx)
            fees += 1
            line = (OutPoint(tx.txid(), 0), tx.outputs[0], MOVER)
        if loaded and height >= LOAD_START and height % LOAD_EVERY == 0:
            for coin in fanned:
                tx = spend([coin], [TxOut(coin[1].amount - LOAD_FEE, SINK.pubkey_hash)])
                txs.append(tx)
                fees += LOAD_FEE
            if treasury is None:
                treasury = (*cb.coinbase_coin(2)[:2], MINER)
            change = treasury[1].amount - LOAD_FAN * LOAD_AMOUNT - LOAD_FEE
            outs = [TxOut(LOAD_AMOUNT, FANNED.pubkey_hash)] * LOAD_FAN
            tx = spend([treasury], [*outs, TxOut(change, TREASURY.pubkey_hash)])
            txs.append(tx)
            fees += LOAD_FEE
            txid = tx.txid()
            fanned = [(OutPoint(txid, i), tx.outputs[i], FANNED) for i in range(LOAD_FAN)]
            treasury = (OutPoint(txid, LOAD_FAN), tx.outputs[LOAD_FAN], TREASURY)
        cb.miner = SMALL if height in SMALL_HEIGHTS else MINER
        block = cb.next_block(txs, fees=fees)
        cb.add(block)
        cb.miner = MINER
        # Keep memory flat: only the tip and the two coinbases spent later are needed.
        if height > 3:
            cb.blocks[height - 1] = None  # type: ignore[call-overload]
            cb.undos[height - 1] = None  # type: ignore[call-overload]
        yield block


def _cache_root() -> Path:
    env = os.environ.get("TALLY_BENCH_CACHE")
    if env:
        root = Path(env)
        root.mkdir(parents=True, exist_ok=True)
        return root
    root = Path(tempfile.mkdtemp(prefix="tally-bench-chains-"))
    atexit.register(shutil.rmtree, root, True)
    return root


_ROOT: Path | None = None


def chain_datadirs(heights: Iterable[int], loaded: bool = False) -> dict[int, Path]:
    """A data directory (``<dir>/chainstate``, regtest) per height, holding blocks 1..h of the
    benchmark chain (``loaded``: with the extra load). Reused from the cache when present; the
    caller must copy before writing."""
    from node.chainstate import Chainstate
    from node.storage import LevelDBStore

    global _ROOT
    if _ROOT is None:
        _ROOT = _cache_root()
    from node.chainstate.schema import SCHEMA_VERSION

    kind = "loaded" if loaded else "plain"
    # The directories are chainstates: one of another schema would be refused by the node.
    root = _ROOT / f"chain-v{CHAIN_VERSION}-s{SCHEMA_VERSION}-{kind}"
    wanted = sorted(set(heights))
    out = {h: root / f"h{h}" for h in wanted}
    missing = [h for h in wanted if not (out[h] / "complete").exists()]
    if not missing:
        return out
    top = max(missing)
    log(f"building the {kind} benchmark chain to height {top:,} (snapshots at {missing})")
    began = time.perf_counter()
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    clock = time.time  # the blocks' times are in the past: no stand-in clock needed
    store = LevelDBStore(work / "chainstate")
    try:
        cs = Chainstate(store, REGTEST, clock=clock, sync=False)
        for block in iter_chain(top, loaded):
            cs.process_block(block)
            if cs.height in missing:
                store.close()
                dest = out[cs.height]
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(work, dest)
                (dest / "complete").write_text(f"{cs.height}\n")
                store = LevelDBStore(work / "chainstate")
                cs = Chainstate(store, REGTEST, clock=clock, sync=False)
            if cs.height % 1000 == 0:
                log(f"  height {cs.height:,} ({time.perf_counter() - began:.0f} s)")
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    log(f"chain built in {time.perf_counter() - began:.1f} s")
    return out


def copy_datadir(src: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("complete"))
    return dest
