"""HTTP API benchmark: transactions accepted per second over ``POST /tx`` and ``POST /txs``.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_api.py [--quick] [--json OUT]

The machine is shared and noisy (2 cores), so every figure with a meaning is a RATIO to a
ceiling measured in the same run, interleaved with it; absolute rates are for information.

Processes, all on loopback:

- the node: a real ``tally-node run --network regtest`` (``tests.functional.node_process``),
  fresh data directory, no peers, no mining;
- the ceiling: a separate ``python -c`` process serving a bare aiohttp app (``web.run_app``,
  no access log) whose one POST handler reads the body and answers ``{"txid": "00"}`` as JSON:
  the HTTP cost any handler pays, with nothing done;
- the client: this process. A minimal HTTP/1.1 client on a raw keep-alive socket
  (``TCP_NODELAY``), request bytes built beforehand, the answer read up to its
  ``Content-Length``: as little client work as possible, so the ceiling is the server's and
  not the client's. The same client, connections and request bytes serve both servers.

Setup (untimed): 100 + F blocks generated to key A (admin generate); F fan-out transactions
(posted with ``POST /tx``, mined by one more generate) split the coinbases of heights 1..F into
500 outputs each over 200 keys, giving 3 x N distinct confirmed coins. N transactions per phase
(default 2,000; 500 with ``--quick``), each spending one of those coins into one output with a
fee of 500 units, are signed beforehand; each phase uses fresh ones.

a. ``POST /tx``, one connection, sequential (accepted tx/s). The N msgpack bodies are sent in
   chunks of 250, each chunk to the node and then, with the same bodies, to the ceiling (the
   order alternates per chunk); times are summed. Ratio ``tx/ceiling`` (target >= 0.3).
b. ``POST /tx``, 4 connections (a thread each, the chunk split between them), same method on
   fresh transactions. Ratio ``tx_conc4/ceiling_conc4`` (info).
c. ``POST /txs``, batches of 500 (msgpack array of bin), one connection, N fresh transactions,
   each batch interleaved with the same body to the ceiling and with
   ``consensus.verify_signature`` of the batch's signatures in this process (digests computed
   beforehand): the elliptic-curve work alone. Figure ``txs_tx_per_s`` (target >= 3,000 tx/s;
   absolute, so read it with ``txs/verify_raw``), ratios ``txs/verify_raw`` and
   ``txs/ceiling`` (transactions per second over the ceiling's batch rate x 500).

Every answer is checked after timing: the node must answer 200 with the transaction's txid (for
``/txs``, one txid per item), the ceiling 200; anything else is counted as an error and
reported (figures ``*_errors``). The node and the ceiling are stopped at the end, also on failure.

Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name": "api", "figures",
"ratios", "targets", "machine"}``.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import (  # noqa: E402
    Conn,
    crypto_engine,
    loadavg,
    platform_info,
    post_bytes,
    version,
    write_json,
)

from consensus import (  # noqa: E402
    OutPoint,
    Transaction,
    TxOut,
    block_subsidy,
    signature_hash,
    verify_signature,
)
from tests.functional.node_process import NodeProcess, address_of, free_port  # noqa: E402
from tests.helpers import REGTEST, Key, key, spend  # noqa: E402

NAME = "api"
FAN_OUT = 500
KEYS = 200
FEE = 500
FAN_FEE = 100_000
CHUNK = 250
BATCH = 500
CONNECTIONS = 4
TARGETS: dict[str, float] = {"tx/ceiling": 0.3, "txs_tx_per_s": 3_000.0}

Coin3 = tuple[OutPoint, TxOut, Key]

CEILING_CODE = """
import sys
from aiohttp import web

async def handle(request):
    await request.read()
    return web.json_response({"txid": "00"})

app = web.Application(client_max_size=4 * 1024 * 1024)
app.router.add_post("/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


# --- client ------------------------------------------------------------------------------------


Answer = tuple[int, bytes]


def run_sequential(conn: Conn, requests: Sequence[bytes], out: list[Answer]) -> float:
    gc.collect()
    start = time.perf_counter()
    for data in requests:
        out.append(conn.request(data))
    return time.perf_counter() - start


def run_concurrent(conns: Sequence[Conn], requests: Sequence[bytes], out: list[Answer]) -> float:
    """Requests split round-robin over the connections, a thread each; wall time."""
    parts: list[list[Answer]] = [[] for _ in conns]
    barrier = threading.Barrier(len(conns) + 1)

    def worker(i: int) -> None:
        conn, mine, res = conns[i], requests[i :: len(conns)], parts[i]
        barrier.wait()
        for data in mine:
            res.append(conn.request(data))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    gc.collect()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for part in parts:  # grouped per connection, not in request order
        out.extend(part)
    return elapsed


# --- processes ---------------------------------------------------------------------------------


def start_ceiling() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", CEILING_CODE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the ceiling server exited with {proc.returncode}:\n{err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("the ceiling server did not start")


def stop_ceiling(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- setup -------------------------------------------------------------------------------------


def fund(node: NodeProcess, coins_needed: int) -> list[Coin3]:
    """Mature coinbases fanned out into ``coins_needed`` confirmed coins (over ``KEYS`` keys)."""
    miner = key(1)
    keys = [key(3_000 + i) for i in range(KEYS)]
    fans = -(-coins_needed // FAN_OUT)
    hashes = node.generate(REGTEST.coinbase_maturity + fans, address_of(miner.pubkey_hash))
    coins: list[Coin3] = []
    for height in range(1, fans + 1):
        r = node.get(f"/api/v1/block/{hashes[height - 1]}/txids")
        assert r.status == 200, r.body
        cb_txid = bytes.fromhex(r.json()[0])[::-1]
        coin = (
            OutPoint(cb_txid, 0),
            TxOut(block_subsidy(height, REGTEST), miner.pubkey_hash),
            miner,
        )
        amount = (coin[1].amount - FAN_FEE) // FAN_OUT
        owners = [keys[(height * FAN_OUT + i) % KEYS] for i in range(FAN_OUT)]
        tx = spend([coin], [TxOut(amount, k.pubkey_hash) for k in owners])
        r = node.post_raw("/api/v1/tx", tx.serialize())
        assert r.status == 200, r.body
        coins += [(OutPoint(tx.txid(), i), tx.outputs[i], k) for i, k in enumerate(owners)]
    node.generate(1, address_of(miner.pubkey_hash))
    mempool = node.get("/api/v1/mempool").json()
    assert mempool.get("count", 0) == 0, mempool
    return coins[:coins_needed]


def sign_spends(coins: Sequence[Coin3]) -> list[Transaction]:
    return [spend([c], [TxOut(c[1].amount - FEE, c[2].pubkey_hash)]) for c in coins]


def txid_hex(tx: Transaction) -> str:
    return tx.txid()[::-1].hex()


def check_tx_answers(answers: Sequence[Answer], txs: Sequence[Transaction]) -> int:
    errors = 0
    for (status, body), tx in zip(answers, txs, strict=True):
        if status != 200 or json.loads(body).get("txid") != txid_hex(tx):
            errors += 1
    return errors


def check_status(answers: Sequence[Answer]) -> int:
    return sum(status != 200 for status, _ in answers)


def first_error(answers: Sequence[Answer]) -> str:
    for status, body in answers:
        if status != 200:
            return f"{status} {body[:200]!r}"
    return ""


# --- a./b. POST /tx ----------------------------------------------------------------------------


def bench_tx(
    node_port: int,
    ceil_port: int,
    txs: Sequence[Transaction],
    connections: int,
) -> tuple[float, float, int, int, str]:
    """(node seconds, ceiling seconds, node errors, ceiling errors, first error text)."""
    bodies = [tx.serialize() for tx in txs]
    to_node = [post_bytes(node_port, "/api/v1/tx", b) for b in bodies]
    to_ceil = [post_bytes(ceil_port, "/api/v1/tx", b) for b in bodies]
    node_conns = [Conn(node_port) for _ in range(connections)]
    ceil_conns = [Conn(ceil_port) for _ in range(connections)]
    node_answers: list[Answer] = []
    ceil_answers: list[Answer] = []
    t_node = t_ceil = 0.0
    try:
        for i, lo in enumerate(range(0, len(bodies), CHUNK)):
            hi = min(lo + CHUNK, len(bodies))
            order = ["node", "ceiling"] if i % 2 == 0 else ["ceiling", "node"]
            for who in order:
                reqs = to_node[lo:hi] if who == "node" else to_ceil[lo:hi]
                conns = node_conns if who == "node" else ceil_conns
                out = node_answers if who == "node" else ceil_answers
                if connections == 1:
                    t = run_sequential(conns[0], reqs, out)
                else:
                    t = run_concurrent(conns, reqs, out)
                if who == "node":
                    t_node += t
                else:
                    t_ceil += t
    finally:
        for c in node_conns + ceil_conns:
            c.close()
    if connections == 1:
        node_errors = check_tx_answers(node_answers, txs)
    else:  # answers are grouped per connection: check the set of txids
        expected = {txid_hex(tx) for tx in txs}
        got = {json.loads(b).get("txid") for s, b in node_answers if s == 200}
        node_errors = len(expected - got)
    return t_node, t_ceil, node_errors, check_status(ceil_answers), first_error(node_answers)


# --- c. POST /txs ------------------------------------------------------------------------------


def bench_txs(
    node_port: int, ceil_port: int, txs: Sequence[Transaction], coins: Sequence[Coin3]
) -> tuple[float, float, float, int, int, str]:
    """(node s, ceiling s, verify_raw s, node errors, ceiling errors, first error text)."""
    triples = [
        (tx.inputs[0].pubkey, tx.inputs[0].signature, signature_hash(tx, 0, c[1], REGTEST))
        for tx, c in zip(txs, coins, strict=True)
    ]
    batches = [range(lo, min(lo + BATCH, len(txs))) for lo in range(0, len(txs), BATCH)]
    bodies = [msgpack.packb([txs[j].serialize() for j in b]) for b in batches]
    to_node = [post_bytes(node_port, "/api/v1/txs", b) for b in bodies]
    to_ceil = [post_bytes(ceil_port, "/api/v1/txs", b) for b in bodies]
    node_conn, ceil_conn = Conn(node_port), Conn(ceil_port)
    node_answers: list[Answer] = []
    ceil_answers: list[Answer] = []
    t = {"node": 0.0, "ceiling": 0.0, "verify": 0.0}
    names = ["node", "ceiling", "verify"]
    try:
        for i, batch in enumerate(batches):
            shift = i % len(names)
            for who in names[shift:] + names[:shift]:
                if who == "node":
                    t[who] += run_sequential(node_conn, [to_node[i]], node_answers)
                elif who == "ceiling":
                    t[who] += run_sequential(ceil_conn, [to_ceil[i]], ceil_answers)
                else:
                    gc.collect()
                    start = time.perf_counter()
                    for j in batch:
                        if not verify_signature(*triples[j]):
                            raise AssertionError("a signature failed")
                    t[who] += time.perf_counter() - start
    finally:
        node_conn.close()
        ceil_conn.close()
    errors = 0
    first = ""
    for (status, body), batch in zip(node_answers, batches, strict=True):
        if status != 200:
            errors += len(batch)
            first = first or f"{status} {body[:200]!r}"
            continue
        items = json.loads(body)
        for item, j in zip(items, batch, strict=True):
            if item.get("txid") != txid_hex(txs[j]):
                errors += 1
                first = first or json.dumps(item)[:200]
    return t["node"], t["ceiling"], t["verify"], errors, check_status(ceil_answers), first


# --- report ------------------------------------------------------------------------------------


def machine(load_before: list[float], quick: bool, n: int) -> dict[str, Any]:
    return {
        **platform_info(load_before),
        "aiohttp": version("aiohttp"),
        "msgpack": version("msgpack"),
        "coincurve": version("coincurve"),
        "crypto_engine": crypto_engine(),
        "quick": quick,
        "n_per_phase": n,
        "chunk": CHUNK,
        "batch": BATCH,
        "connections": CONNECTIONS,
        "client": "raw keep-alive HTTP/1.1 socket, TCP_NODELAY, in the bench process",
    }


def verdict(name: str, value: float) -> str:
    target = TARGETS.get(name)
    if target is None:
        return ""
    return f"target >= {target:g}  {'ok' if value >= target else 'BELOW'}"


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    f, r = figures, ratios
    print(
        f"\nTally API bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"aiohttp {info['aiohttp']}, load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(f"N = {info['n_per_phase']:,} fresh transactions per phase\n")
    rows = [
        ("a. do-nothing handler, 1 conn", "ceiling_req_per_s", "", ""),
        ("   POST /tx, 1 conn", "tx_tx_per_s", "tx/ceiling", "tx_errors"),
        (f"b. do-nothing handler, {CONNECTIONS} conns", "ceiling_conc4_req_per_s", "", ""),
        (f"   POST /tx, {CONNECTIONS} conns", "tx_conc4_tx_per_s", "tx_conc4/ceiling_conc4", ""),
        ("c. verify_signature alone", "verify_raw_per_s", "", ""),
        (f"   do-nothing handler, {BATCH}-tx body", "txs_ceiling_tx_per_s", "", ""),
        (f"   POST /txs, batches of {BATCH}", "txs_tx_per_s", "txs/verify_raw", "txs_errors"),
    ]
    for label, fig, ratio, _ in rows:
        value = f"{f[fig]:10,.0f} /s"
        extra = f"  {ratio} {r[ratio]:.3f}" if ratio else ""
        target = verdict(ratio, r[ratio]) if ratio else ""
        target = target or verdict(fig, f[fig])
        print(f"  {label:36} {value}{extra:30} {target}".rstrip())
    print(f"  {'':36} {'':13}  txs/ceiling {r['txs/ceiling']:.3f}")
    print(
        f"  per request: node {f['tx_us_per_req']:.0f} us, ceiling "
        f"{f['ceiling_us_per_req']:.0f} us (difference {f['tx_overhead_us']:.0f} us)"
    )
    errs = {k: int(v) for k, v in f.items() if k.endswith("_errors")}
    print(f"  errors (non-acceptances): {errs}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 transactions per phase")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    n = 500 if args.quick else 2_000
    load_before = loadavg()
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    problems: list[str] = []

    with tempfile.TemporaryDirectory(prefix="tally-bench-api-") as tmp:
        node = NodeProcess(Path(tmp) / "node")
        ceiling: subprocess.Popen[bytes] | None = None
        try:
            print("starting the node and the ceiling server ...", file=sys.stderr)
            ceiling, ceil_port = start_ceiling()
            node.start()
            print(f"funding {3 * n} coins ...", file=sys.stderr)
            coins = fund(node, 3 * n)
            print("signing ...", file=sys.stderr)
            phases = [coins[i * n : (i + 1) * n] for i in range(3)]
            txs = [sign_spends(p) for p in phases]

            print(f"a. POST /tx x {n}, 1 connection ...", file=sys.stderr)
            t_node, t_ceil, err_node, err_ceil, first = bench_tx(node.port, ceil_port, txs[0], 1)
            figures |= {
                "ceiling_req_per_s": n / t_ceil,
                "tx_tx_per_s": n / t_node,
                "tx_us_per_req": 1e6 * t_node / n,
                "ceiling_us_per_req": 1e6 * t_ceil / n,
                "tx_overhead_us": 1e6 * (t_node - t_ceil) / n,
                "tx_errors": err_node,
                "ceiling_errors": err_ceil,
            }
            ratios["tx/ceiling"] = t_ceil / t_node
            if first:
                problems.append(f"POST /tx: {first}")

            print(f"b. POST /tx x {n}, {CONNECTIONS} connections ...", file=sys.stderr)
            t_node, t_ceil, err_node, err_ceil, first = bench_tx(
                node.port, ceil_port, txs[1], CONNECTIONS
            )
            figures |= {
                "ceiling_conc4_req_per_s": n / t_ceil,
                "tx_conc4_tx_per_s": n / t_node,
                "tx_conc4_errors": err_node,
                "ceiling_conc4_errors": err_ceil,
            }
            ratios["tx_conc4/ceiling_conc4"] = t_ceil / t_node
            if first:
                problems.append(f"POST /tx ({CONNECTIONS} conns): {first}")

            print(f"c. POST /txs x {n} in batches of {BATCH} ...", file=sys.stderr)
            t_node, t_ceil, t_verify, err_node, err_ceil, first = bench_txs(
                node.port, ceil_port, txs[2], phases[2]
            )
            figures |= {
                "verify_raw_per_s": n / t_verify,
                "txs_ceiling_tx_per_s": n / t_ceil,
                "txs_tx_per_s": n / t_node,
                "txs_errors": err_node,
                "txs_ceiling_errors": err_ceil,
            }
            ratios["txs/verify_raw"] = t_verify / t_node
            ratios["txs/ceiling"] = t_ceil / t_node
            if first:
                problems.append(f"POST /txs: {first}")
            mempool = node.get("/api/v1/mempool").json()
            figures["mempool_count_after"] = mempool.get("count", -1)
        except BaseException:
            print(node.log()[-3000:], file=sys.stderr)
            raise
        finally:
            if ceiling is not None:
                stop_ceiling(ceiling)
            if node.proc is not None:
                try:
                    node.stop()
                except Exception:
                    node.kill()

    info = machine(load_before, args.quick, n)
    print_table(figures, ratios, info)
    for p in problems:
        print(f"  first error: {p}")
    write_json(args.json, NAME, figures, ratios, TARGETS, info, figure_digits=3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
