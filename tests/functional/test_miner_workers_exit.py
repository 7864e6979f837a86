"""Proof-of-work workers end with their node, however the node ends (issue 17, item 10).

A node mining with ``--mine-to`` runs its nonce search in worker processes. ``kill -9`` of the
node's own PID (not its process group, so nothing signals the workers) runs no shutdown code; the
workers used to be re-parented to init and keep hashing (two workers and a resource tracker, about
73 MB, per crash). Now each worker watches its parent and exits; the resource tracker follows when
the last of them is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from tests.functional.node_process import NodeProcess, address_of


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), found before the parent dies."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_a_mining_node_leaves_no_worker_running(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", "--mine-to", address_of(bytes(20)), "--block-time", "1")
    node.start()
    assert node.proc is not None
    pgid = node.proc.pid
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and node.get("/api/v1/info").json()["height"] < 2:
            time.sleep(0.2)
        assert node.get("/api/v1/info").json()["height"] >= 2, node.log()
        workers = descendants(node.proc.pid)
        assert len(workers) >= 2, f"expected PoW workers below the node, found {workers}"
        os.kill(node.proc.pid, signal.SIGKILL)  # the node alone: no shutdown code runs
        node.proc.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in workers):
            time.sleep(0.1)
        assert [p for p in workers if alive(p)] == []
    finally:
        node.kill()
        with contextlib.suppress(ProcessLookupError):  # a failed run leaves no stray worker
            os.killpg(pgid, signal.SIGKILL)
