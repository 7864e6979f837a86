"""The long-chain benchmark's builder (``scripts/bench/bench_long.py``) at a tiny scale.

What the benchmark relies on: the chain it writes is one a real node takes as it is
(``tally-node reindex`` validates every block again from the stored bodies and reaches the tip),
it holds the transactions the builder recorded, and a second run finds it in the cache instead of
building it again. A benchmark is not a timed test: nothing here measures time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.functional.node_process import tally_node_command

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench" / "bench_long.py"
SCALE = "0.0015"  # 150 blocks; transactions from height 101


def build(cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", SCALE, "--cache", str(cache), "--build-only"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )


def test_long_chain_is_valid_cached_and_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = build(cache)
    assert "building the long chain: 150 blocks" in first.stderr, first.stderr
    (root,) = cache.iterdir()
    meta = json.loads((root / "build.json").read_text())
    assert meta["params"]["blocks"] == 150
    assert meta["txs"] > 0
    assert sorted(p.name for p in root.iterdir()) == ["build.json", "h100", "h150"]
    assert meta["snapshots"]["100"]["txs"] == 0  # no coinbase is mature before height 101
    assert meta["snapshots"]["150"]["txs"] == meta["txs"]

    copy = tmp_path / "node"
    shutil.copytree(root / "h150", copy)
    done = subprocess.run(
        [*tally_node_command(), "reindex", "--network", "regtest", "--datadir", str(copy)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every transaction has one input and 2 or 20 outputs: the UTXO set grew by at least one
    # coin per transaction over the 151 coinbase outputs (genesis included).
    assert "reindexed to height 150: " in done.stdout, done.stdout
    coins = int(done.stdout.split("reindexed to height 150: ")[1].split()[0])
    assert coins >= 151 + meta["txs"], (coins, meta["txs"])

    stamp = (root / "build.json").stat().st_mtime_ns
    second = build(cache)
    assert "using the cached long chain" in second.stderr, second.stderr
    assert "building" not in second.stderr
    assert (root / "build.json").stat().st_mtime_ns == stamp
