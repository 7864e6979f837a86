"""``tally-wallet`` run as a person runs it, for the wallet's functional tests.

``Wallets`` runs the installed ``tally-wallet`` in a subprocess with ``HOME`` in the test's
temporary directory, ``TALLY_WALLET_PASSWORD`` set, and no other ``TALLY_*`` variable of the
calling environment; unlike ``test_wallet_cli.Env`` it adds no option of its own, so the tests
see what ``--wallet`` alone (the node URL remembered in the file) does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.functional.node_process import NodeProcess

API = "/api/v1"
PASSWORD = "correct horse battery staple"


def wallet_command() -> list[str]:
    exe = Path(sys.executable).parent / "tally-wallet"
    assert exe.exists(), "tally-wallet is not installed (pip install -e .)"
    return [str(exe)]


@dataclass
class Wallets:
    node: NodeProcess
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        env.update({"HOME": str(self.home), "TALLY_WALLET_PASSWORD": PASSWORD})
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def run(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*wallet_command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env if env is not None else self.env(),
            timeout=timeout,
        )

    def ok(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Any:
        """Run with ``--json``; the parsed answer (the command must succeed)."""
        r = self.run(*args, "--json", stdin=stdin, env=env)
        assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        return json.loads(r.stdout)

    def fails(self, *args: str, env: dict[str, str] | None = None, status: int = 1) -> str:
        """Run a command that must fail with one line on stderr; that line."""
        r = self.run(*args, env=env)
        assert r.returncode == status, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("tally-wallet: "), r.stderr
        assert "unexpected error" not in lines[0], r.stderr  # every failure here is expected
        return lines[0]

    def create(self, name: str) -> Path:
        path = self.home / f"{name}.json"
        data = self.ok("--wallet", str(path), "--node", self.node.url, "create")
        assert data["network"] == "regtest"
        return path

    # --- chain helpers ---

    def mempool(self) -> list[str]:
        txids: list[str] = self.node.get(API + "/mempool/txids").json()
        return txids

    def mine_when(self, txid_count: int, count: int, address: str) -> threading.Thread:
        """In a thread: once ``txid_count`` transactions not in the mempool now are in it,
        mine ``count`` blocks to ``address``."""
        before = set(self.mempool())

        def run() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(set(self.mempool()) - before) >= txid_count:
                    self.node.generate(count, address)
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread
