"""``tally-wallet`` in a real terminal (issue 15, point 1): the password typed at the prompt.

Each command runs in a pseudo-terminal (``pexpect``) with no ``TALLY_WALLET_PASSWORD`` and no
``--password-file``, exactly as a person at a terminal runs it, against a real ``tally-node`` on
regtest. The test types the password when the prompt appears and checks that what it typed is
never echoed back, that ``create``, ``balance`` and ``send`` succeed, and that a wrong password
at the prompt is the one-line error. (Regression: the wallet opened ``/dev/tty`` with mode
``"r+"``, which raises ``io.UnsupportedOperation`` on a terminal, and every prompt failed with
"no terminal to ask for wallet password".)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.functional.node_process import NodeProcess, address_of

BIN = Path(sys.executable).parent
PASSWORD = "tty-typed secret 42"
PAYEE = address_of(b"\x07" * 20)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    base = tmp_path_factory.mktemp("tty")
    with NodeProcess(base / "node") as n:
        yield n


def spawn(node: NodeProcess, wallet: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        str(BIN / "tally-wallet"),
        ["--wallet", str(wallet), "--node", node.url, "--network", "regtest", *args],
        env=clean_env(wallet.parent),
        encoding="utf-8",
        timeout=120,
        dimensions=(50, 200),
    )


def type_password(child: pexpect.spawn, prompt: str, password: str = PASSWORD) -> None:
    child.expect_exact(prompt)
    child.sendline(password)


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait for the end; the exit status and everything the terminal showed."""
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return child.exitstatus, child.before


def test_create_balance_send_typing_the_password(node: NodeProcess, tmp_path: Path) -> None:
    wallet = tmp_path / "w.json"

    child = spawn(node, wallet, "create")
    type_password(child, "New wallet password: ")
    type_password(child, "Repeat the password: ")
    status, shown = finish(child)
    assert status == 0, shown
    assert PASSWORD not in shown  # echo was off
    assert "Created wallet" in shown
    address = re.search(r"Receive address: (\S+)", shown)
    assert address, shown
    node.generate(101, address.group(1))

    child = spawn(node, wallet, "balance")
    type_password(child, "Wallet password: ")
    status, shown = finish(child)
    assert status == 0, shown
    assert PASSWORD not in shown
    confirmed = re.search(r"confirmed\s+(\d+)\.00000000", shown)
    assert confirmed and int(confirmed.group(1)) >= 50, shown
    assert re.search(r"total\s+5050\.00000000", shown), shown  # 101 coinbases of 50

    child = spawn(node, wallet, "send", PAYEE, "1.25")
    type_password(child, "Wallet password: ")
    status, shown = finish(child)
    assert status == 0, shown
    assert PASSWORD not in shown
    txid = re.search(r"txid\s+([0-9a-f]{64})", shown)
    assert txid and "Sent" in shown and "1.25000000" in shown, shown
    assert txid.group(1) in node.get("/api/v1/mempool/txids").json()


def test_a_wrong_password_at_the_prompt_is_one_line(node: NodeProcess, tmp_path: Path) -> None:
    wallet = tmp_path / "w.json"
    child = spawn(node, wallet, "create")
    type_password(child, "New wallet password: ")
    type_password(child, "Repeat the password: ")
    assert finish(child)[0] == 0
    before = wallet.read_bytes()

    child = spawn(node, wallet, "balance")
    type_password(child, "Wallet password: ", "not the password")
    status, shown = finish(child)
    assert status == 1
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines == [f"tally-wallet: wrong password for {wallet}; nothing was changed"], shown
    assert wallet.read_bytes() == before

    # two different passwords at create: nothing written
    other = tmp_path / "other.json"
    child = spawn(node, other, "create")
    type_password(child, "New wallet password: ")
    type_password(child, "Repeat the password: ", PASSWORD + "x")
    status, shown = finish(child)
    assert status == 1 and "the two passwords differ" in shown
    assert not other.exists()

    # restore: the mnemonic typed at its prompt (shown), then the password twice (not shown)
    words = "legal winner thank year wave sausage worth useful legal winner thank yellow"
    restored = tmp_path / "restored.json"
    child = spawn(node, restored, "restore")
    type_password(child, "Mnemonic (12 or 24 words): ", words)
    type_password(child, "New wallet password: ")
    type_password(child, "Repeat the password: ")
    status, shown = finish(child)
    assert status == 0 and "Restored wallet" in shown, shown
    assert PASSWORD not in shown

    # end of input at the prompt (Ctrl-D): one line, no traceback
    child = spawn(node, wallet, "balance")
    child.expect_exact("Wallet password: ")
    child.sendeof()
    status, shown = finish(child)
    assert status == 1 and "Traceback" not in shown, shown
