"""A data directory written under the old merkle rule is refused, untouched (issue 16, defect 1).

The merkle root moved from txids to wtxids (SPEC 2.4), so a chainstate of schema version 1 holds
blocks whose roots are invalid now. A real ``tally-node`` writes a LevelDB chainstate; its
version key is set back to 1 (what an older Tally wrote); then ``tally-node run`` and
``tally-node reindex`` must exit non-zero with a message naming what to do, and every key and
value of the database must be as it was.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from node.chainstate import schema as k
from node.storage import LevelDBStore
from tests.functional.node_process import NodeProcess, address_of, free_port, tally_node_command
from tests.helpers import key


def snapshot(path: Path) -> dict[bytes, bytes]:
    with LevelDBStore(path, create_if_missing=False) as db:
        return dict(db.iterate(b""))


def test_old_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    node = NodeProcess(datadir).start()
    node.generate(3, address_of(key(0).pubkey_hash))
    assert node.stop() == 0
    path = datadir / "chainstate"
    with LevelDBStore(path, create_if_missing=False) as db:
        assert k.read_u32(db.get(k.K_VERSION) or b"") == k.SCHEMA_VERSION
        with db.write_batch() as batch:
            batch.put(k.K_VERSION, k.u32(1))  # as an older Tally (txid merkle roots) left it
    before = snapshot(path)
    assert len(before) > 10

    for args in (
        ["run", "--port", str(free_port())],
        ["reindex"],
    ):
        done = subprocess.run(
            [*tally_node_command(), *args, "--network", "regtest", "--datadir", str(datadir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0, (args, done.stdout, done.stderr)
        message = done.stderr
        assert "older Tally" in message, message
        assert "merkle" in message and "--datadir" in message, message
        assert "Traceback" not in message, message
        assert snapshot(path) == before, args
    assert not (datadir / ".cookie").exists()
