"""The README's "Run a node" block, run as written (issue 15 point 6): it installs with
``scripts/install.sh`` (not the whole test suite), starts a regtest node, and the client
commands find it from ``--datadir`` alone through ``<datadir>/.url``.

The block runs with bash in a scratch folder linked to this checkout (as the quickstart test
does), with one substitution: its example data directory ``/tmp/tally1`` becomes the test's own.
It uses the regtest default port, 18844, as a reader would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from tests.functional.test_devnet import ROOT, processes_mentioning, scratch_checkout

EXAMPLE_DATADIR = "/tmp/tally1"


def run_a_node_block() -> str:
    section = (ROOT / "README.md").read_text().split("## Run a node", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README.md's Run a node section has no code block"
    return match.group(1)


def test_the_readme_run_a_node_block_runs_as_written(tmp_path: Path) -> None:
    block = run_a_node_block()
    assert "scripts/install.sh" in block and "scripts/test.sh" not in block
    assert EXAMPLE_DATADIR in block
    work = scratch_checkout(tmp_path)
    datadir = tmp_path / "tally1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.replace(EXAMPLE_DATADIR, str(datadir))],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        assert "installed: .venv/bin/tally-node" in done.stdout
        documents = [json.loads(d) for d in re.findall(r"^\{.*?^\}", done.stdout, re.S | re.M)]
        generated, info = documents[0], documents[1]
        assert len(generated["hashes"]) == 101
        assert info["network"] == "regtest" and info["height"] == 101
        assert done.stdout.rstrip().endswith("stopping")
        deadline = time.monotonic() + 60
        while processes_mentioning(str(datadir)):  # `stop` ends the backgrounded node
            assert time.monotonic() < deadline, "the node did not stop"
            time.sleep(0.2)
        assert not (datadir / ".url").exists()
    finally:
        for pid in processes_mentioning(str(datadir)):
            os.kill(pid, 9)
