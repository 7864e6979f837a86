"""``tally-devnet`` and ``scripts/devnet.sh`` as a newcomer uses them (issue: a local network in
one command, and tests that run the README).

- The quickstart block of ``README.md`` is read from the README itself and run with bash in a
  pseudo-terminal, so the README cannot drift from the code: after ``source .devnet/env`` the
  wallet's commands need no flags and ask for no password (issue 20, acceptance 8). It runs
  in a scratch folder that links to this checkout's
  sources, ``scripts`` and ``.venv``, so its ``.devnet`` is the test's own. (Regression: with
  only ``scripts`` and ``pyproject.toml`` linked, a fresh CI venv was re-installed from the
  scratch folder and lost its packages for every later test.)
- ``up`` brings up connected nodes and a funded wallet; the three commands it prints work when
  pasted; ``status`` shows heights and peers; ``down`` leaves no process behind; ``up`` again
  continues the same chain.
- ``--network test`` mines real proof of work.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pexpect
import pytest

from consensus import check_proof_of_work, get_params
from node.devnet import DEV_PASSWORD
from tests.functional.node_process import free_port_block

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line mentions ``text`` (the devnet's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def scratch_checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    # The whole source, so that even an install started from here would be complete.
    for name in (
        "scripts",
        ".venv",
        "pyproject.toml",
        "requirements",
        "README.md",
        "consensus",
        "node",
        "wallet",
        "client",
    ):
        (work / name).symlink_to(ROOT / name)
    return work


def quickstart_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README.md has no quickstart code block"
    return match.group(1)


def info(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/api/v1/info", timeout=10) as r:
        data: dict[str, object] = json.loads(r.read())
        return data


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    block = quickstart_block()
    assert "scripts/devnet.sh" in block and "tally-devnet down" in block
    work = scratch_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    # In a pseudo-terminal, as a person runs it. After ``source .devnet/env`` the wallet needs
    # no flags and no password (SPEC 6); a prompt would mean the env file did not do its job, so
    # the test answers one (rather than hang) and then fails.
    child = pexpect.spawn(
        "bash",
        ["-euo", "pipefail", "-c", block],
        cwd=str(work),
        env=env,
        encoding="utf-8",
        timeout=300,
        dimensions=(50, 250),
    )
    shown: list[str] = []
    prompts = 0
    while child.expect_exact(["Wallet password: ", pexpect.EOF]) == 0:
        shown.append(child.before + "Wallet password: ")
        child.sendline(DEV_PASSWORD)
        prompts += 1
    shown.append(child.before)
    child.close()
    devnet = work / ".devnet"
    try:
        out = "".join(shown).replace("\r\n", "\n")
        assert child.exitstatus == 0, out
        assert prompts == 0, out  # the env file gave the password (and the wallet, the node)
        assert "explorer:  http://127.0.0.1:18944/" in out
        assert re.search(r"node 2\s+http://127.0.0.1:18946\s+height \d+\s+peers [12]", out)
        assert re.search(r"confirmed\s+\d+\.\d{8}", out)  # balance
        assert "1.50000000" in out  # the payment, in send's table and in history
        assert processes_mentioning(str(devnet)) == []  # `down` left nothing behind
        # the environment is intact for everything after this test (see the module docstring)
        check = subprocess.run(
            [sys.executable, "-c", "import consensus, node.cli, wallet.cli"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
    finally:
        subprocess.run([str(BIN / "tally-devnet"), "down", "--dir", str(devnet)], timeout=60)


def test_up_prints_commands_that_work_status_down_and_up_again(tmp_path: Path) -> None:
    devnet = tmp_path / "dn"
    port = free_port_block(3)
    command = [str(BIN / "tally-devnet"), "up", "--dir", str(devnet), "--base-port", str(port)]
    started = time.monotonic()
    up = subprocess.run(
        [*command, "--block-time", "1"], capture_output=True, text=True, timeout=120
    )
    took = time.monotonic() - started
    try:
        assert up.returncode == 0, up.stderr
        print(f"tally-devnet up: 3 connected nodes and a funded wallet in {took:.1f} s")
        heights = [int(info(f"http://127.0.0.1:{port + i}")["height"]) for i in range(3)]  # type: ignore[call-overload]
        assert min(heights) >= 110
        for i in range(3):
            assert int(info(f"http://127.0.0.1:{port + i}")["peers"]) >= 1  # type: ignore[call-overload]

        pasted = up.stdout.split("try:", 1)[1].strip().split("\n\n", 1)[0].splitlines()
        assert len(pasted) == 3, up.stdout
        for line in pasted:
            words = shlex.split(line)
            env = dict(os.environ)
            while "=" in words[0]:
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            ran = subprocess.run(words, env=env, capture_output=True, text=True, timeout=120)
            assert ran.returncode == 0, f"{line}\n{ran.stderr}"

        status = subprocess.run(
            [str(BIN / "tally-devnet"), "status", "--dir", str(devnet)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0
        rows = re.findall(r"node (\d)\s+\S+\s+height (\d+)\s+peers (\d+)", status.stdout)
        assert len(rows) == 3 and all(int(peers) >= 1 for _, _, peers in rows)
        height_before = max(int(h) for _, h, _ in rows)

        down = subprocess.run(
            [str(BIN / "tally-devnet"), "down", "--dir", str(devnet)], timeout=60, check=False
        )
        assert down.returncode == 0
        assert processes_mentioning(str(devnet)) == []

        again = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "resuming" in again.stdout
        assert int(info(f"http://127.0.0.1:{port}")["height"]) >= height_before  # type: ignore[call-overload]
    finally:
        subprocess.run([str(BIN / "tally-devnet"), "down", "--dir", str(devnet)], timeout=60)
    assert processes_mentioning(str(devnet)) == []


@pytest.mark.timeout(600)
def test_the_test_network_mines_real_proof_of_work(tmp_path: Path) -> None:
    """One node on the ``test`` network mines with real proof of work (about 2**25 hashes a
    block at its pow_limit: tens of seconds on two cores)."""
    devnet = tmp_path / "testnet"
    port = free_port_block(1)
    up = subprocess.run(
        [
            str(BIN / "tally-devnet"),
            "up",
            "--dir",
            str(devnet),
            "--network",
            "test",
            "--nodes",
            "1",
            "--base-port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert up.returncode == 0, up.stderr
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 540
        while int(info(url)["height"]) < 1:  # type: ignore[call-overload]
            assert time.monotonic() < deadline, "no test-network block within 9 minutes"
            time.sleep(1)
        with urllib.request.urlopen(f"{url}/api/v1/block-height/1", timeout=10) as r:
            block_hash = r.read().decode()
        with urllib.request.urlopen(f"{url}/api/v1/block/{block_hash}", timeout=10) as r:
            block = json.loads(r.read())
        params = get_params("test")
        assert block["bits"] == params.pow_limit_bits
        assert check_proof_of_work(bytes.fromhex(block_hash)[::-1], block["bits"], params.pow_limit)
        assert int(block_hash, 16) < 2**256 // 2**20  # real work: far below regtest's targets
    finally:
        subprocess.run([str(BIN / "tally-devnet"), "down", "--dir", str(devnet)], timeout=60)
    assert processes_mentioning(str(devnet)) == []
