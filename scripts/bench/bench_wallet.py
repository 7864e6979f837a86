"""Wallet benchmark: ``tally-wallet send --dry-run`` from a wallet holding 1,000 unspent outputs.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_wallet.py [--quick] [--json OUT]

The machine is shared and noisy (2 cores), so the figure with a meaning is a RATIO to a ceiling
measured in the same run, interleaved with it; absolute times are for information.

Setup (untimed): a real ``tally-node run --network regtest`` (``tests.functional.node_process``);
a miner wallet and a target wallet made with ``tally-wallet create``; 100 + F blocks generated to
the miner; the miner's wallet code (``wallet.service.Wallet.send``, the same code the command
runs) pays N outputs of 0.01 TLY to the target's receive addresses 0..99 in transactions of 200
outputs; one more block confirms them. N = 1,000 (200 with ``--quick``).

The send being measured pays all but 0.005 TLY of the target's balance to one address at 1 unit
per byte, so every one of the N coins is selected and signed (a transaction of about N x 137
bytes).

a. End to end: ``tally-wallet --json send ADDRESS AMOUNT --dry-run`` as a subprocess (Python
   start-up, keystore unlock with scrypt, the gap-limit scan over HTTP, selection, signing,
   output), median of 5 runs (3 with ``--quick``). Checked: N inputs, fee = size.
b. In process, median of 5 (3): the same send split into its phases: keystore unlock (scrypt),
   scan (HTTP), coin selection, signing (``wallet.builder.build_signed``).
c. Ceiling: ``consensus.sign`` of the same number of digests with N distinct keys, nothing else
   (keys and digests prepared beforehand), interleaved with (b). Ratio ``sign_raw/select+sign``:
   how close the wallet's own work (selection + building + signing) comes to bare signing
   (1.0 = no overhead).

Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name": "wallet", "figures",
"ratios", "machine"}``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from client.http import Client  # noqa: E402
from consensus import COIN, decode_address, get_params, sign  # noqa: E402
from tests.functional.node_process import NodeProcess, address_of  # noqa: E402
from wallet import keystore  # noqa: E402
from wallet.builder import build_signed  # noqa: E402
from wallet.coinselect import Payment, select_coins  # noqa: E402
from wallet.keys import RECEIVE  # noqa: E402
from wallet.service import Wallet  # noqa: E402

PASSWORD = "bench"
REGTEST = get_params("regtest")
BURN = address_of(b"\x00" * 19 + b"\x02")
PER_TX = 200
ADDRESSES = 100
OUTPUT_AMOUNT = COIN // 100


def wallet_cmd() -> list[str]:
    return [str(Path(sys.executable).parent / "tally-wallet")]


def run_wallet(path: Path, url: str, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env["TALLY_WALLET_PASSWORD"] = PASSWORD
    r = subprocess.run(
        [
            *wallet_cmd(),
            "--network",
            "regtest",
            "--wallet",
            str(path),
            "--node",
            url,
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(f"tally-wallet {args}: {r.stderr}")
    return json.loads(r.stdout)


def open_wallet(path: Path, url: str) -> Wallet:
    store = keystore.load(path)
    return Wallet(path, store, store.unlock(PASSWORD), Client(url))


def setup(node: NodeProcess, base: Path, n: int) -> tuple[Path, int]:
    """The target wallet's path, holding ``n`` confirmed outputs; and their total."""
    miner_path, target_path = base / "miner.json", base / "target.json"
    miner_info = run_wallet(miner_path, node.url, "create")
    run_wallet(target_path, node.url, "create")
    txs = (n + PER_TX - 1) // PER_TX
    node.generate(100 + txs + 1, miner_info["address"])
    miner = open_wallet(miner_path, node.url)
    target = open_wallet(target_path, node.url)
    addresses = [target.account.address(RECEIVE, i) for i in range(ADDRESSES)]
    made = 0
    while made < n:
        count = min(PER_TX, n - made)
        payments = [(addresses[(made + i) % ADDRESSES], OUTPUT_AMOUNT) for i in range(count)]
        miner.send(payments, None, dry_run=False)
        made += count
    node.generate(1, BURN)
    return target_path, n * OUTPUT_AMOUNT


def time_subprocess(path: Path, url: str, amount: str, n: int) -> float:
    started = time.perf_counter()
    result = run_wallet(path, url, "send", BURN, amount, "--fee-rate", "1", "--dry-run")
    elapsed = time.perf_counter() - started
    assert len(result["inputs"]) == n, len(result["inputs"])
    assert result["fee"] == result["size"]
    return elapsed


def time_phases(path: Path, url: str, amount: int, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    store = keystore.load(path)
    secret = store.unlock(PASSWORD)
    t1 = time.perf_counter()
    wallet = Wallet(path, store, secret, Client(url))
    scan = wallet.scan()
    t2 = time.perf_counter()
    change = wallet.account.pubkey_hash(1, wallet.store.change_index)

    selection = select_coins(
        scan.utxos,
        [Payment(decode_address(BURN, REGTEST), amount)],
        Decimal(1),
        change,
        scan.tip + 1,
        REGTEST.coinbase_maturity,
    )
    t3 = time.perf_counter()

    def key_for(pubkey_hash: bytes) -> bytes:
        key = scan.by_hash[pubkey_hash].key
        return wallet.account.privkey(key.chain, key.index)

    tx = build_signed(selection, key_for, REGTEST)
    t4 = time.perf_counter()
    assert len(tx.inputs) == n
    return {"unlock": t1 - t0, "scan": t2 - t1, "select": t3 - t2, "sign": t4 - t3}


def time_raw_sign(keys: list[bytes], digests: list[bytes]) -> float:
    started = time.perf_counter()
    for key, digest in zip(keys, digests, strict=True):
        sign(key, digest)
    return time.perf_counter() - started


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 outputs, 3 runs")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    n = 200 if args.quick else 1_000
    runs = 3 if args.quick else 5
    load_before = loadavg()
    keys = [hashlib.sha256(b"bench wallet key %d" % i).digest() for i in range(n)]
    digests = [hashlib.sha256(b"bench wallet digest %d" % i).digest() for i in range(n)]

    with tempfile.TemporaryDirectory(prefix="tally-bench-wallet-") as tmp:
        base = Path(tmp)
        with NodeProcess(base / "node") as node:
            t = time.perf_counter()
            path, total = setup(node, base, n)
            setup_s = time.perf_counter() - t
            spend = total - COIN // 200  # all but 0.005 TLY: every coin is needed
            spend_text = f"{Decimal(spend) / COIN:.8f}"
            end_to_end, phases, raw = [], [], []
            for i in range(runs):
                gc.collect()
                end_to_end.append(time_subprocess(path, node.url, spend_text, n))
                order = [0, 1] if i % 2 == 0 else [1, 0]
                for which in order:
                    gc.collect()
                    if which == 0:
                        phases.append(time_phases(path, node.url, spend, n))
                    else:
                        raw.append(time_raw_sign(keys, digests))

    med = statistics.median
    phase = {k: med(p[k] for p in phases) for k in phases[0]}
    work = med(p["select"] + p["sign"] for p in phases)
    raw_s = med(raw)
    figures = {
        "utxos": n,
        "send_dry_run_end_to_end_s": med(end_to_end),
        "in_process_unlock_s": phase["unlock"],
        "in_process_scan_s": phase["scan"],
        "in_process_select_s": phase["select"],
        "in_process_sign_s": phase["sign"],
        "in_process_select_sign_s": work,
        "raw_sign_s": raw_s,
        "setup_s": setup_s,
    }
    ratios = {
        "sign_raw/select+sign": raw_s / work,
        "select+sign/end_to_end": work / med(end_to_end),
    }
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "quick": args.quick,
        "runs": runs,
    }
    print(f"# wallet benchmark: send --dry-run from {n} unspent outputs (median of {runs})")
    print(f"load average before {load_before}, after {machine['loadavg_after']}\n")
    print("| figure | value |\n|---|---|")
    for name, value in figures.items():
        shown = f"{value:.3f} s" if name.endswith("_s") else str(value)
        print(f"| {name} | {shown} |")
    for name, value in ratios.items():
        print(f"| ratio {name} | {value:.2f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"name": "wallet", "figures": figures, "ratios": ratios, "machine": machine},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
