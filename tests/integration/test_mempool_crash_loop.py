"""Crash loop of the mempool (issue 17, acceptance 3): 30 ``kill -9``s at chosen points of
reorganisations and of mempool restores, with thousands of transactions in the pool, and after
every restart every transaction that was valid and accepted is back, and nothing invalid is.

A worker process (``mempool_crash_worker.py``) holds the node's state on one LevelDB directory
as ``node.service`` wires it, and plays the scenario's ten phases: submit a batch, confirm 150 of
the pool in a block, then lose that block to a two-block rival that double-spends some of it
(a one-block reorganisation that hands 150 transactions back to a pool of 850 to 2,600). In
each phase the worker is killed with ``SIGKILL`` (by itself, at the exact point: a count of
accepts or a chain event) two or three times in a row on the same directory:

- in the reorganisation: while the mempool takes back (at its first, a middle or a late
  accept), as soon as the disconnection is committed, as soon as the rival's first block is
  connected, or when the pass is about to forget the chain's records; or just after the block
  that confirms 150 of the pool is committed, before the mempool has heard of it;
- then in the restore that follows: at a chosen fraction of the accepts of ``load``.

After every restart whose ``load`` finishes, the worker writes what it restored; the test
compares it with the pool ``expected_pool`` derives from the chain alone for that tip (every
submitted transaction not in the chain whose inputs are unspent): the same set, no more, no
less, and each transaction that never left the pool keeps the entry time it was accepted with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REGTEST
from tests.integration.mempool_crash_worker import (
    NOW,
    Scenario,
    build_scenario,
    write_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "mempool_crash_worker.py"
PHASES = 10
# The runs of each phase, in order: where each is killed (``none``: it plays the phase to its
# end). ``takeback:F`` and ``load:F`` die at the accept whose index is the fraction F of the
# expected pool (fewer than the pass has to accept, so it is reached). After a ``none`` the
# restores have no disconnected block to take back first: the persisted entries alone, in
# which a parent handed back by a reorganisation is newer than its children.
PLANS: list[list[str]] = [
    ["mined", "takeback:0", "load:0"],
    ["takeback:0.001", "load:0.4", "load:0.999"],
    ["disconnected", "none", "load:0.001", "load:0.9"],
    ["mined", "takeback:0.5", "load:0.6"],
    ["connected", "load:0.02", "load:0.3"],
    ["takeback:0.95", "none", "load:0.7", "load:0.003"],
    ["mined", "forget", "load:0.8"],
    ["takeback:0.06", "load:0.5", "load:0.2"],
    ["connected", "none", "load:0.95", "load:0.1"],
    ["mined", "takeback:0.99", "load:0.65"],
]
REORG_KILLS = ("takeback", "disconnected", "connected", "forget")


@dataclass
class State:
    """Where the node's durable state is, as far as the test knows."""

    tip: bytes
    through: int  # phases whose batch was submitted


def test_the_plan_makes_thirty_kills() -> None:
    assert sum(kill != "none" for plan in PLANS for kill in plan) == 30
    assert len(PLANS) == PHASES


def run_worker(
    db: Path, scenario: Path, phase: int, kill: str, dump: Path
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(WORKER), str(db), str(scenario), str(phase), kill, str(dump)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def check_restored(
    dump: Path, state: State, scenario: Scenario, times: dict[str, float], context: str
) -> int:
    restored = json.loads(dump.read_text())
    dump.unlink()
    tip = bytes.fromhex(restored["tip"])[::-1]
    assert tip == state.tip, f"{context}: opened at {restored['tip']}, expected another tip"
    if tip == REGTEST.genesis.hash():
        expected: set[bytes] = set()
    else:
        expected = scenario.expected[(tip, state.through)]
    pool = {bytes.fromhex(t)[::-1]: when for t, when in restored["pool"].items()}
    lost, kept = expected - pool.keys(), pool.keys() - expected
    assert not lost and not kept, (
        f"{context}: {len(lost)} valid transaction(s) lost, {len(kept)} invalid one(s) kept "
        f"(restored {len(pool)} of {len(expected)})"
    )
    for txid, when in pool.items():
        known = times.get(txid[::-1].hex())
        if known is not None:
            assert when == known, f"{context}: {txid[::-1].hex()} came back with another time"
    return len(pool)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_thirty_kills_in_reorganisations_and_restores_lose_nothing(tmp_path: Path) -> None:
    scenario = build_scenario(PHASES)
    scenario_file = tmp_path / "scenario.bin"
    write_scenario(scenario, scenario_file)
    db, dump = tmp_path / "chainstate", tmp_path / "restored.json"
    # The entry time of each transaction that was never confirmed (a confirmed one that comes
    # back from a disconnected block is accepted anew, with the clock's time then).
    mined = {tx.txid() for p in scenario.phases for tx in p.mined.txs}
    times = {
        tx.txid()[::-1].hex(): NOW + k
        for k, p in enumerate(scenario.phases)
        for tx in p.submitted
        if tx.txid() not in mined
    }
    state = State(REGTEST.genesis.hash(), 0)
    kills = runs = 0
    sizes: list[int] = []
    for k, (phase, plan) in enumerate(zip(scenario.phases, PLANS, strict=True)):
        for kill in plan:
            kind, _, fraction = kill.partition(":")
            spec = kind
            if fraction:
                size = len(
                    scenario.expected[
                        (phase.rival[-1].hash(), k + 1)
                        if kind == "takeback"
                        else (state.tip, state.through)
                    ]
                )
                spec = f"{kind}:{int(float(fraction) * size)}"
            context = f"phase {k}, run {runs + 1} (kill {kills + 1} at {spec})"
            done = run_worker(db, scenario_file, k, spec, dump)
            runs += 1
            wanted = 0 if kind == "none" else -signal.SIGKILL
            if done.returncode != wanted and dump.exists():  # say what it restored first
                check_restored(dump, state, scenario, times, context)
            assert done.returncode == wanted, (
                f"{context}: the worker was to end with {wanted}, it ended with "
                f"{done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
            if kind == "load":
                assert not dump.exists(), f"{context}: killed in load, yet it wrote a dump"
                kills += 1
                continue
            sizes.append(check_restored(dump, state, scenario, times, context))
            submitted = json.loads(done.stdout.splitlines()[0])
            if state.through == k:  # the first time this batch was sent: all accepted
                assert submitted["refused"] == {}, f"{context}: {submitted['refused']}"
            state.through = k + 1
            state.tip = phase.mined.hash() if kind == "mined" else phase.rival[-1].hash()
            kills += kind != "none"
    assert kills == 30
    final = run_worker(db, scenario_file, -1, "none", dump)
    assert final.returncode == 0, final.stderr[-4000:]
    sizes.append(check_restored(dump, state, scenario, times, "after the last kill"))
    assert max(sizes) >= 2_000, f"the pool should hold thousands of transactions: {sizes}"
