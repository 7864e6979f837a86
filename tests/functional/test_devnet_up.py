"""``tally-devnet up`` on a devnet that already exists (issue 15, point 3), on real processes.

- After one node dies, ``up`` restarts it (connected to the others again) and says so, where
  it used to print "already running" and leave it dead.
- Settings stick: ``up --block-time 60`` then a plain ``up`` keeps 60 s (it used to reset to
  5 s); ``up --block-time 2`` on a running devnet applies it (the miner is re-tuned, blocks come
  again) and says "block time 60 s -> 2 s"; all of it is kept in ``<dir>/devnet.json``.
- A plain ``up`` with nothing to do says "nothing changed"; a second ``down`` says nothing was
  running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.functional.node_process import free_port_block

BIN = Path(sys.executable).parent


def devnet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    return subprocess.run(
        [str(BIN / "tally-devnet"), *args], capture_output=True, text=True, env=env, timeout=180
    )


def info(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/api/v1/info", timeout=10) as r:
        data: dict[str, int] = json.loads(r.read())
        return data


def wait_for(what: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.mark.timeout(600)
def test_up_restarts_dead_nodes_and_keeps_its_settings(tmp_path: Path) -> None:
    d = tmp_path / "dn"
    port = free_port_block(2)
    urls = [f"http://127.0.0.1:{port + i}" for i in range(2)]
    where = ["--dir", str(d)]
    try:
        first = devnet("up", *where, "--nodes", "2", "--base-port", str(port), "--block-time", "60")
        assert first.returncode == 0, first.stderr
        state = json.loads((d / "devnet.json").read_text())
        assert state["block_time"] == 60 and state["node_count"] == 2

        # a plain up: nothing to do, and the 60 s block time is kept
        plain = devnet("up", *where)
        assert plain.returncode == 0, plain.stderr
        assert "nothing changed" in plain.stdout, plain.stdout
        assert json.loads((d / "devnet.json").read_text())["block_time"] == 60

        # node 1 dies; up brings it back, connected, and says so
        os.kill(state["nodes"][1]["pid"], signal.SIGKILL)
        wait_for("node 1 to die", lambda: not os.path.exists(f"/proc/{state['nodes'][1]['pid']}"))
        again = devnet("up", *where)
        assert again.returncode == 0, again.stderr
        assert "node 1 restarted (it was not running)" in again.stdout, again.stdout
        assert info(urls[1])["peers"] >= 1
        wait_for("node 1 to catch up", lambda: info(urls[1])["height"] >= info(urls[0])["height"])

        # a new block time on a running devnet is applied and reported
        height = info(urls[0])["height"]
        fast = devnet("up", *where, "--block-time", "2")
        assert fast.returncode == 0, fast.stderr
        assert "block time 60 s -> 2 s" in fast.stdout, fast.stdout
        wait_for("a block at the new block time", lambda: info(urls[0])["height"] > height, 60)
        assert json.loads((d / "devnet.json").read_text())["block_time"] == 2

        down = devnet("down", *where)
        assert down.returncode == 0 and "node 0 stopped" in down.stdout
        second = devnet("down", *where)
        assert second.returncode == 0
        assert "nothing was running" in second.stdout and "stopped\n" not in second.stdout
    finally:
        devnet("down", *where)
