"""Chain selection by work through a real node process: blocks POSTed to ``/api/v1/block``.

The node runs on the ``worktest`` network (``tests/workchain.py``: regtest with a retarget every
4 blocks), started by ``tests/integration/worknet_node.py``, which registers that network and
runs the ``tally-node`` entry point (``node.cli.main``) in its own process on a LevelDB data
directory; no stock network can make blocks of differing work cheaply (see that module).

One node sees, in order (work by height as in ``tests/unit/test_chain_selection_by_work.py``;
F is mined 1 s a block and retargets to 4x harder blocks at height 4, S 120 s a block):

1. F1..F4: active (height 4, work 16).
2. S1..S6: side. A longer chain with less work (up to 14) is refused.
3. S7: side. Equal work (16), seen later: F stays.
4. S8: active (work 18, longer and more work: the positive control).
5. F5: active. A reorganisation to a SHORTER chain (5 < 8) with more work (24 > 18).
6. A restart (SIGTERM, start on the same data directory) keeps F5 as the tip.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from consensus import Block
from tests.functional.node_process import NodeProcess, http
from tests.helpers import key
from tests.workchain import FAST, SLOW, WORK_PARAMS, WorkChain

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1"


class WorknetNode(NodeProcess):
    """A ``NodeProcess`` started through ``worknet_node`` on the ``worktest`` network."""

    def __init__(self, datadir: Path) -> None:
        super().__init__(datadir, network=WORK_PARAMS.name, env={"TALLY_NETWORK": "worktest"})

    def start(self, timeout: float = 60) -> WorknetNode:
        self.datadir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.worknet_node",
                    "run",
                    "--datadir",
                    str(self.datadir),
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, "PYTHONPATH": str(ROOT)},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the node exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http(self.url + API + "/info", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the node did not answer within {timeout} s:\n{self.log()}")


def post(node: NodeProcess, block: Block) -> str:
    """POST ``block`` (msgpack); its status (``active``/``side``), checked against its hash."""
    r = node.post_raw(API + "/block", block.serialize())
    assert r.status == 200, (r.status, r.body)
    answer = r.json()
    assert answer["hash"] == block.hash_hex()
    return str(answer["status"])


def tip(node: NodeProcess) -> tuple[str, int, int]:
    """The node's best hash, height and chainwork (from ``/info``)."""
    info = node.get(API + "/info").json()
    assert info["network"] == "worktest"
    return info["best_hash"], info["height"], int(info["chainwork"], 16)


def test_a_node_follows_the_most_work_not_the_most_blocks(tmp_path: Path) -> None:
    fast = WorkChain(key(1))
    fast.grow(5, FAST)
    slow = WorkChain(key(2))
    slow.grow(8, SLOW)
    assert [fast.work_at(h) for h in (4, 5)] == [16, 24]
    assert [slow.work_at(h) for h in (6, 7, 8)] == [14, 16, 18]
    f4 = (fast.blocks[4].hash_hex(), 4, 16)

    node = WorknetNode(tmp_path / "node")
    with node:
        assert [post(node, b) for b in fast.blocks[1:5]] == ["active"] * 4
        assert tip(node) == f4
        assert [post(node, b) for b in slow.blocks[1:7]] == ["side"] * 6
        assert tip(node) == f4
        assert post(node, slow.blocks[7]) == "side"
        assert tip(node) == f4
        assert post(node, slow.blocks[8]) == "active"
        assert tip(node) == (slow.tip.hash_hex(), 8, 18)
        assert post(node, fast.blocks[5]) == "active"
        assert tip(node) == (fast.tip.hash_hex(), 5, 24)
        r = node.get(f"{API}/block/{slow.tip.hash_hex()}")
        assert r.status == 200 and r.json()["in_best_chain"] is False
        assert node.stop() == 0
        node.start()
        assert tip(node) == (fast.tip.hash_hex(), 5, 24)
