"""The command lines on real processes, issue 15 points 2, 5 and 11.

- ``send`` checks its arguments before anything is broadcast (``--wait 0`` is a usage error
  and the mempool stays empty), prints the summary (txid, amount, fee) before waiting, and a
  wait that cannot finish (the node killed meanwhile) says "sent, still unconfirmed" with the
  txid, never just "cannot reach the node".
- A running node writes its URL to ``<datadir>/.url``; ``tally-node info``/``generate``/``stop``
  find it from ``--datadir`` alone (no ``--port``, no ``--network``), and the file goes at stop.
- ``--node http://.../api/v1`` says the URL should be the node's root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.functional.node_process import NodeProcess, address_of, tally_node_command

BIN = Path(sys.executable).parent
PASSWORD = "pw for send tests"
PAYEE = address_of(b"\x09" * 20)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(extra)
    return env


def wallet(node_url: str, path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(BIN / "tally-wallet"),
            "--wallet",
            str(path),
            "--node",
            node_url,
            "--network",
            "regtest",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(TALLY_WALLET_PASSWORD=PASSWORD, HOME=str(path.parent)),
    )


def run_wallet(node_url: str, path: Path, *args: str) -> tuple[int, str, str]:
    proc = wallet(node_url, path, *args)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def funded_wallet(node: NodeProcess, path: Path) -> None:
    status, out, err = run_wallet(node.url, path, "--json", "create")
    assert status == 0, err
    node.generate(101, json.loads(out)["address"])


def test_send_checks_wait_before_broadcasting(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n", env=clean_env()) as node:
        path = tmp_path / "w.json"
        funded_wallet(node, path)
        for bad in ("0", "-3", "x"):
            status, _out, err = run_wallet(node.url, path, "send", PAYEE, "1", "--wait", bad)
            assert status == 2, err
            assert "--wait" in err
            assert node.get("/api/v1/mempool/txids").json() == []  # nothing was sent


def test_send_prints_the_summary_first_and_a_lost_wait_says_sent(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", env=clean_env()).start()
    try:
        path = tmp_path / "w.json"
        funded_wallet(node, path)
        proc = wallet(node.url, path, "send", PAYEE, "2.5", "--wait", "3")
        assert proc.stdout is not None
        head: list[str] = []  # the whole summary, printed before any block is mined
        while PAYEE not in "".join(head):
            line = proc.stdout.readline()
            assert line, head
            head.append(line)
        txid = re.search(r"txid\s+([0-9a-f]{64})", "".join(head))
        assert head[0].startswith("Sent") and txid, head
        assert re.search(r"fee\s+0\.\d{8} TLY", "".join(head)), head
        assert txid.group(1) in node.get("/api/v1/mempool/txids").json()
        node.kill()  # the node goes away during the wait
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode == 1
        lines = err.strip().splitlines()
        assert lines[-1].startswith(f"tally-wallet: sent, still unconfirmed: {txid.group(1)}"), err
        assert re.search(rf"{PAYEE}\s+2\.50000000", "".join(head)), head
    finally:
        node.kill()


def test_json_fee_rates_are_numbers_and_node_url_must_be_the_root(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n", env=clean_env()) as node:
        path = tmp_path / "w.json"
        funded_wallet(node, path)
        status, out, err = run_wallet(node.url, path, "--json", "send", PAYEE, "1", "--dry-run")
        assert status == 0, err
        data = json.loads(out)
        assert type(data["fee_rate"]) is float and type(data["requested_fee_rate"]) is float
        status, out, err = run_wallet(node.url + "/api/v1", path, "balance")
        assert status == 2
        assert f"give the node's root URL, {node.url}" in err, err


def node_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tally_node_command(), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )


def test_client_commands_find_the_node_from_its_datadir(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", env=clean_env()).start()
    try:
        url_file = node.datadir / ".url"
        assert url_file.read_text().strip() == node.url
        # --datadir alone: no --port (the node is on a random one), no --network
        where = ["--datadir", str(node.datadir)]
        info = node_cli("info", *where)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["network"] == "regtest"
        gen = node_cli("generate", "2", "--to", PAYEE, *where)
        assert gen.returncode == 0, gen.stderr
        assert len(json.loads(gen.stdout)["hashes"]) == 2
        stop = node_cli("stop", *where)
        assert stop.returncode == 0, stop.stderr
        assert node.proc is not None and node.proc.wait(60) == 0
        assert not url_file.exists() and not (node.datadir / ".cookie").exists()
        # a node that is gone: the error names where it looked
        gone = node_cli("info", *where, "--network", "regtest")
        assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1
        assert "cannot reach the node" in gone.stderr and str(node.datadir) in gone.stderr
    finally:
        node.kill()


def test_a_url_file_left_by_a_killed_node_is_reported(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", env=clean_env()).start()
    node.kill()
    time.sleep(0.2)
    assert (node.datadir / ".url").exists()  # nothing removed it
    gone = node_cli("info", "--datadir", str(node.datadir))
    assert gone.returncode == 1
    assert f"cannot reach the node at {node.url}" in gone.stderr, gone.stderr
