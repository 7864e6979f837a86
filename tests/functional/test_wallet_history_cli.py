"""``tally-wallet history`` and ``bump-fee`` through the installed command on a real node
(issue 15, points 7 and 8).

- The table has a header for every column (date, direction, counterparty, amount, fee,
  confirmations, txid), marks mined coins and payments to self, and pages: ``--limit N`` rows,
  ``--page P``, with a footer saying which rows these are and how to see older ones.
- After ``bump-fee``, the wallet remembers (encrypted) what it replaced, and ``history`` asks
  the node, which answers the original with ``status.replaced_by`` (SPEC 3.5): a "replaced by
  <txid>" row (a node that has forgotten it, 404, gives no row and no error: the unit tests).
  The stub-node unit tests (tests/unit/test_wallet_history.py) pin the first case exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.functional.node_process import NodeProcess, address_of
from wallet import keystore

BIN = Path(sys.executable).parent
PASSWORD = "history pw"
PAYEE = address_of(b"\x0b" * 20)
WALLET = [str(BIN / "tally-wallet")]


def run(node: NodeProcess, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(TALLY_WALLET_PASSWORD=PASSWORD, HOME=str(path.parent))
    return subprocess.run(
        [*WALLET, "--wallet", str(path), "--node", node.url, "--network", "regtest", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def ok(node: NodeProcess, path: Path, *args: str) -> str:
    done = run(node, path, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_history_columns_paging_and_replacements(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    with NodeProcess(tmp_path / "n", env=env) as node:
        path = tmp_path / "w.json"
        me = json.loads(ok(node, path, "--json", "create"))["address"]
        node.generate(102, me)
        to_self = json.loads(ok(node, path, "--json", "address", "--new"))["address"]
        ok(node, path, "send", to_self, "3")
        node.generate(1, PAYEE)
        first = json.loads(ok(node, path, "--json", "send", PAYEE, "1", "--fee-rate", "1"))
        bumped = json.loads(ok(node, path, "--json", "bump-fee", first["txid"], "--fee-rate", "5"))
        assert bumped["replaces"] == first["txid"]
        # remembered, encrypted: not in the file's clear text, in its decrypted part
        assert first["txid"] not in path.read_text()
        secret = keystore.load(path).unlock(PASSWORD)
        assert secret.replaced == ((first["txid"], bumped["txid"]),)

        rows = json.loads(ok(node, path, "--json", "history"))
        by_txid = {r["txid"]: r for r in rows}
        assert len(rows) == 102 + 2 + 1  # the replaced original is a row of its own
        assert rows[0]["txid"] == bumped["txid"] and rows[0]["direction"] == "sent"
        assert rows[0]["counterparty"] == PAYEE and rows[0]["confirmations"] == 0
        assert sum(r["direction"] == "mined" for r in rows) == 102
        assert sum(r["direction"] == "to self" for r in rows) == 1
        # The node remembers the replacement (SPEC 3.5), and history shows it.
        answer = node.get(f"/api/v1/tx/{first['txid']}")
        assert answer.status == 200, answer.body
        assert answer.json()["status"]["replaced_by"] == bumped["txid"]
        assert by_txid[first["txid"]]["direction"] == "replaced"
        assert by_txid[first["txid"]]["replaced_by"] == bumped["txid"]
        table = ok(node, path, "history", "--limit", "3")
        assert f"replaced by {bumped['txid']}" in table

        table = ok(node, path, "history", "--limit", "2")
        lines = table.splitlines()
        header = lines[0].split()
        assert header[:2] == ["date", "(UTC)"] and header[2:] == [
            "direction",
            "counterparty",
            "amount",
            "(TLY)",
            "fee",
            "(TLY)",
            "confs",
            "txid",
        ]
        assert "unconfirmed" in lines[2] and PAYEE in lines[2]
        assert f"transactions 1-2 of {len(rows)}" in table and "--page 2 --limit 2" in table
        page = ok(node, path, "history", "--limit", "2", "--page", "3")
        assert f"transactions 5-6 of {len(rows)}" in page
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d\s+mined\s+\(coinbase\)\s+\+50\.0", page), page
        default = ok(node, path, "history")  # 20 rows unless told otherwise
        assert f"transactions 1-20 of {len(rows)}" in default
        past = run(node, path, "history", "--page", "99")
        assert past.returncode == 2 and "past the end" in past.stderr
