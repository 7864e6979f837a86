"""Snapshot benchmark: the devnet toolkit's snapshot and revert of a 1,000-block node (SPEC 6).

Run from the repository root::

    .venv/bin/python scripts/bench/bench_snapshots.py [--quick] [--json OUT]

The chain is ``benchlib.chain_datadirs``' "loaded" one (from height 101 one fee-paying
transaction a block, from height 110 every 10th block carries 22 transactions), 1,000 blocks,
in a LevelDB data directory. First the ceiling: ``shutil.copytree`` of that ``chainstate``
directory (a raw file copy of the same bytes, page cache warm), then the node's own start-up on
it. Then a real ``tally-node run --network regtest`` on a copy, and, each round:

- ``POST /admin/snapshot {name}``: a consistent copy of the whole store into a new LevelDB
  under ``<datadir>/snapshots/<name>/``, on the state thread (wall time of the request);
- ``POST /admin/generate`` of 10 blocks (not timed), so the revert has something to undo;
- ``POST /admin/revert {name}``: the store's contents replaced (copy, sync, swap), the
  chainstate, mempool and fees rebuilt; checked: tip and ``utxo-set-info`` back to the
  snapshot's.

5 rounds (3 with ``--quick``), medians. Ratios: ``snapshot/copytree`` (how far a snapshot is
from a bare file copy of the store) and ``revert/startup`` (a revert against restarting the
node on the same data). No target: these are for information (the issue asks for the seconds).

Output: a table on stdout; ``--json OUT`` writes ``{"name": "snapshots", "figures", "ratios",
"targets", "machine"}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib as bl

NAME = "snapshots"
TARGETS: dict[str, dict[str, float]] = {}
BLOCKS = 1_000
MINED = 10


def post(node: bl.BenchNode, path: str, body: dict[str, object]) -> tuple[float, dict[str, object]]:
    began = time.perf_counter()
    r = node.post_json(f"/api/v1/admin/{path}", body, admin=True)
    elapsed = time.perf_counter() - began
    assert r.status == 200, (path, r.status, r.body[:300])
    answer: dict[str, object] = json.loads(r.body)
    return elapsed, answer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 5")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    rounds = 3 if args.quick else 5
    load_before = bl.loadavg()
    began = time.perf_counter()
    cached = bl.chain_datadirs([BLOCKS], loaded=True)[BLOCKS]
    snapshot_s: list[float] = []
    revert_s: list[float] = []
    copy_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-snapshots-") as tmp_name:
        tmp = Path(tmp_name)
        datadir = bl.copy_datadir(cached, tmp / "node")
        for r in range(rounds):
            dest = tmp / f"copy{r}"
            t0 = time.perf_counter()
            shutil.copytree(datadir / "chainstate", dest)
            copy_s.append(time.perf_counter() - t0)
            shutil.rmtree(dest)
        node = bl.BenchNode(datadir).start()
        try:
            startup_s = node.startup_s
            assert node.height() == BLOCKS, node.height()
            miner = bl.address_of(bl.MINER.pubkey_hash)
            for r in range(rounds):
                name = f"round-{r}"
                before = node.get("/api/v1/utxo-set-info").json()
                took, snap = post(node, "snapshot", {"name": name})
                snapshot_s.append(took)
                assert snap["best_hash"] == before["best_hash"], snap
                node.generate(MINED, miner)
                took, reverted = post(node, "revert", {"name": name})
                assert reverted["height"] == BLOCKS, reverted
                revert_s.append(took)
                after = node.get("/api/v1/utxo-set-info").json()
                assert after == before, (before, after)
                bl.log(
                    f"round {r + 1}/{rounds}: snapshot {snapshot_s[-1]:.3f} s, revert "
                    f"{revert_s[-1]:.3f} s (file copy {copy_s[r]:.3f} s)"
                )
            size = sum(f.stat().st_size for f in (datadir / "chainstate").iterdir())
        finally:
            node.close()
    figures = {
        "blocks": BLOCKS,
        "store_mb": size / 1e6,
        "snapshot_s": statistics.median(snapshot_s),
        "revert_s": statistics.median(revert_s),
        "copytree_s": statistics.median(copy_s),
        "startup_s": startup_s,
    }
    ratios = {
        "snapshot/copytree": figures["snapshot_s"] / figures["copytree_s"],
        "revert/startup": figures["revert_s"] / figures["startup_s"],
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        rounds=rounds,
        chain="loaded: 1 tx a block from height 101, 22 txs in every 10th from 110",
        wall_s=round(time.perf_counter() - began, 1),
    )
    f = figures
    print(
        f"\nTally snapshot bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(f"store of {BLOCKS:,} blocks: {f['store_mb']:.1f} MB; medians of {rounds} rounds")
    print(
        f"snapshot {f['snapshot_s']:.3f} s   (file copy {f['copytree_s']:.3f} s, "
        f"ratio {ratios['snapshot/copytree']:.2f})"
    )
    print(
        f"revert   {f['revert_s']:.3f} s   (node start-up {f['startup_s']:.3f} s, "
        f"ratio {ratios['revert/startup']:.2f})"
    )
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
