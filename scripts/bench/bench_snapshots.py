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

Then a 3-node devnet at 1,000 blocks, as a user drives it: ``tally-devnet up --nodes 3``
(``client.testing.Devnet``: free ports, automine off, ``tally-devnet down`` at the end whatever
happens), ``tally-devnet mine 890`` (``up`` funds it with 110), and, each round, the wall time of
``tally-devnet snapshot NAME --json`` and, after ``tally-devnet mine 10``, of ``tally-devnet
revert NAME --json``; checked: every node's tip is the snapshot's. The same rounds through
``client.devnet.DevnetControl`` in this process (no command start-up) are for information. The
devnet's chain is coinbase-only above 110 (the node's is "loaded"), so its store is smaller; both
sizes are reported.

5 rounds (3 with ``--quick``), medians. Ratios: ``snapshot/copytree`` (how far a snapshot is
from a bare file copy of the store), ``revert/startup`` (a revert against restarting the
node on the same data), and ``devnet_*/snapshot``, ``devnet_*/revert`` (the devnet's command,
``cli``, or in-process call, ``py``, against the one node's request of the same run). No target:
these are for information (the issue asks for the seconds).

Output: a table on stdout; ``--json OUT`` writes ``{"name": "snapshots", "figures", "ratios",
"targets", "machine"}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl

from client.devnet import DevnetControl, installed_command, read_state
from client.testing import Devnet

NAME = "snapshots"
TARGETS: dict[str, dict[str, float]] = {}
BLOCKS = 1_000
MINED = 10
DEVNET_NODES = 3
FUND_BLOCKS = 110
"""What ``tally-devnet up`` mines on regtest (``node.devnet.processes.FUND_BLOCKS``)."""


def post(node: bl.BenchNode, path: str, body: dict[str, object]) -> tuple[float, dict[str, object]]:
    began = time.perf_counter()
    r = node.post_json(f"/api/v1/admin/{path}", body, admin=True)
    elapsed = time.perf_counter() - began
    assert r.status == 200, (path, r.status, r.body[:300])
    answer: dict[str, object] = json.loads(r.body)
    return elapsed, answer


def devnet_cli(directory: Path, *args: str) -> tuple[float, Any]:
    """Wall seconds of ``tally-devnet ARGS --dir DIRECTORY --json`` and its answer."""
    command = [installed_command("tally-devnet"), *args, "--dir", str(directory), "--json"]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, json.loads(done.stdout)


def check_tips(control: DevnetControl, record: dict[str, Any]) -> None:
    """Every node's tip is the snapshot's."""
    tips = [node.info() for node in control.nodes]
    assert all(t.best_hash == record["best_hash"] for t in tips), (record, tips)
    assert all(t.height == BLOCKS for t in tips), tips


def measure_devnet(directory: Path, rounds: int) -> dict[str, float]:
    """The devnet's figures: snapshot and revert by the command and in process, medians."""
    cli_snap: list[float] = []
    cli_rev: list[float] = []
    py_snap: list[float] = []
    py_rev: list[float] = []
    t0 = time.perf_counter()
    with Devnet(nodes=DEVNET_NODES, automine="off", directory=directory) as net:
        up_s = time.perf_counter() - t0
        mine_s, _ = devnet_cli(directory, "mine", str(BLOCKS - FUND_BLOCKS))
        control = net.control
        assert control.wait_agreement()[0].height == BLOCKS
        bl.log(
            f"devnet of {DEVNET_NODES} nodes: up {up_s:.1f} s, mined to {BLOCKS} in {mine_s:.1f} s"
        )
        for r in range(rounds):
            name = f"cli-{r}"
            took, record = devnet_cli(directory, "snapshot", name)
            cli_snap.append(took)
            check_tips(control, record)
            devnet_cli(directory, "mine", str(MINED))
            took, reverted = devnet_cli(directory, "revert", name)
            cli_rev.append(took)
            assert reverted["best_hash"] == record["best_hash"], (record, reverted)
            check_tips(control, record)
            name = f"py-{r}"
            t0 = time.perf_counter()
            record = control.snapshot(name)
            py_snap.append(time.perf_counter() - t0)
            control.mine(MINED)
            t0 = time.perf_counter()
            control.revert(name)
            py_rev.append(time.perf_counter() - t0)
            check_tips(control, record)
            bl.log(
                f"devnet round {r + 1}/{rounds}: snapshot {cli_snap[-1]:.3f} s (in process "
                f"{py_snap[-1]:.3f} s), revert {cli_rev[-1]:.3f} s (in process {py_rev[-1]:.3f} s)"
            )
        store = Path(read_state(directory)["nodes"][0]["datadir"]) / "chainstate"
        size = sum(f.stat().st_size for f in store.iterdir() if f.is_file())
    return {
        "devnet_nodes": DEVNET_NODES,
        "devnet_store_mb": size / 1e6,
        "devnet_up_s": up_s,
        "devnet_snapshot_cli_s": statistics.median(cli_snap),
        "devnet_revert_cli_s": statistics.median(cli_rev),
        "devnet_snapshot_py_s": statistics.median(py_snap),
        "devnet_revert_py_s": statistics.median(py_rev),
    }


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
        devnet = measure_devnet(tmp / "devnet", rounds)
    figures = {
        "blocks": BLOCKS,
        "store_mb": size / 1e6,
        "snapshot_s": statistics.median(snapshot_s),
        "revert_s": statistics.median(revert_s),
        "copytree_s": statistics.median(copy_s),
        "startup_s": startup_s,
        **devnet,
    }
    ratios = {
        "snapshot/copytree": figures["snapshot_s"] / figures["copytree_s"],
        "revert/startup": figures["revert_s"] / figures["startup_s"],
        **{
            f"devnet_{what}_{how}/{what}": figures[f"devnet_{what}_{how}_s"] / figures[f"{what}_s"]
            for what in ("snapshot", "revert")
            for how in ("cli", "py")
        },
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
    print(
        f"\n{DEVNET_NODES}-node devnet at {BLOCKS:,} blocks (store {f['devnet_store_mb']:.1f} MB "
        f"a node); medians of {rounds} rounds"
    )
    for what in ("snapshot", "revert"):
        print(
            f"tally-devnet {what:<8} {f[f'devnet_{what}_cli_s']:.3f} s   (in process "
            f"{f[f'devnet_{what}_py_s']:.3f} s; vs one node: "
            f"{ratios[f'devnet_{what}_cli/{what}']:.2f}x, in process "
            f"{ratios[f'devnet_{what}_py/{what}']:.2f}x)"
        )
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
