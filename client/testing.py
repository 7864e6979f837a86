"""``client.testing``: test an application against a real local network in a few lines (SPEC 6).

    from client.testing import Devnet

    with Devnet(nodes=3) as net:
        address = net.wallet.address()
        net.faucet(address, "2.5")
        assert net.nodes[1].address(address).balance.confirmed == 250_000_000

Job: ``Devnet`` starts a devnet in a temporary folder with the installed ``tally-devnet up``
(real ``tally-node`` processes on loopback, a funded dev wallet), hands back typed node handles
(``client.http.Client``, with their admin tokens), the dev wallet (``DevWallet``, which runs
``tally-wallet``), and every toolkit command (``DevnetControl``'s: ``mine``, ``automine``,
``snapshot``, ``revert``, ``reset``, ``partition``, ``heal``, ``reorg``, ``time_advance``, ...),
and stops every process and removes the folder on exit. Mining is on demand (``automine off``)
unless ``automine`` says otherwise, so a test decides when blocks happen.

The pytest plugin (registered through the package's ``pytest11`` entry point, so installing Tally
is enough): the fixture ``devnet`` gives each test a fresh ``Devnet``; the marker
``@pytest.mark.devnet(nodes=1, automine="tx")`` passes its arguments.

Invariants: a ``Devnet`` owns its folder and its processes; ``__exit__`` runs ``tally-devnet
down`` even when the test failed, and never leaves a process behind; ports are chosen free, below
the kernel's ephemeral range, so several devnets can run at once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from client.devnet import DEV_PASSWORD, DevnetCommandError, DevnetControl, installed_command
from client.http import Client

UP_TIMEOUT = 180.0


def free_base_port(count: int, low: int = 20_000, high: int = 30_000) -> int:
    """The first of ``count`` consecutive ports that are free now, chosen at random."""
    for _ in range(200):
        base = random.randrange(low, high - count)  # noqa: S311 - a port, not a secret
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise DevnetCommandError("no free block of ports found")


class DevWallet:
    """The devnet's funded wallet: each method runs ``tally-wallet --json`` on it."""

    def __init__(self, control: DevnetControl) -> None:
        self.control = control
        self.path = control.wallet_path
        self.password = DEV_PASSWORD

    def run(self, *args: str) -> Any:
        """``tally-wallet --json ARGS``'s answer (a ``DevnetCommandError`` if it fails)."""
        return self.control.wallet(*args)

    def address(self, new: bool = False) -> str:
        return str(self.run("address", *(["--new"] if new else []))["address"])

    def balance(self) -> dict[str, int]:
        answer: dict[str, int] = self.run("balance")
        return answer

    def send(self, address: str, amount: str, *args: str) -> str:
        """Pay ``amount`` TLY (a decimal string) to ``address``; the txid."""
        return str(self.run("send", address, amount, *args)["txid"])

    def history(self) -> Any:
        return self.run("history")


class Devnet:
    """A devnet of ``nodes`` nodes in a temporary folder, for the time of a ``with`` block."""

    def __init__(
        self,
        nodes: int = 3,
        automine: str | float = "off",
        directory: Path | None = None,
    ) -> None:
        if not 1 <= nodes <= 20:
            raise ValueError("a devnet has 1 to 20 nodes")
        self.count = nodes
        self.automine_mode = automine
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="tally-devnet-"))
        self._control: DevnetControl | None = None

    # --- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> Devnet:
        self.up()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.down()

    def up(self) -> None:
        base = free_base_port(self.count)
        command = [
            installed_command("tally-devnet"),
            "up",
            "--dir",
            str(self.dir),
            "--nodes",
            str(self.count),
            "--base-port",
            str(base),
            "--json",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        done = subprocess.run(  # noqa: S603 - a fixed command, arguments as a list
            command, capture_output=True, text=True, timeout=UP_TIMEOUT, env=env, check=False
        )
        if done.returncode != 0:
            self.down()
            raise DevnetCommandError(f"tally-devnet up failed: {done.stderr.strip()[-2000:]}")
        self.description: dict[str, Any] = json.loads(done.stdout)
        self._control = DevnetControl.from_dir(self.dir)
        mode = self.automine_mode
        if isinstance(mode, int | float) and not isinstance(mode, bool):
            self._control.automine("interval", float(mode))
        else:
            self._control.automine(str(mode))

    def down(self) -> None:
        subprocess.run(  # noqa: S603 - a fixed command, arguments as a list
            [installed_command("tally-devnet"), "down", "--dir", str(self.dir)],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- handles --------------------------------------------------------------------------------

    @property
    def control(self) -> DevnetControl:
        if self._control is None:
            raise DevnetCommandError("the devnet is not up (use it in a 'with' block)")
        return self._control

    @property
    def nodes(self) -> list[Client]:
        return self.control.nodes

    def node(self, index: int) -> Client:
        return self.control.node(index)

    @property
    def wallet(self) -> DevWallet:
        return DevWallet(self.control)

    def __getattr__(self, name: str) -> Any:
        """Every toolkit command of ``client.devnet.DevnetControl`` (``mine``, ``snapshot``,
        ``revert``, ``reset``, ``partition``, ``heal``, ``reorg``, ``time_advance``, ``faucet``,
        ``mempool_clear``, ``invalidate``, ``reconsider``, ``wait_agreement``, ...)."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.control, name)


# --- the pytest plugin ---------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the context manager works without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def pytest_configure(config: pytest.Config) -> None:
        config.addinivalue_line(
            "markers",
            "devnet(nodes=3, automine='off'): the arguments of the 'devnet' fixture's Devnet",
        )

    @pytest.fixture
    def devnet(request: pytest.FixtureRequest) -> Iterator[Devnet]:
        """A fresh devnet for one test (``client.testing.Devnet``), stopped afterwards."""
        marker = request.node.get_closest_marker("devnet")
        kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        with Devnet(**kwargs) as net:
            yield net
