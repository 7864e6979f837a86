"""Nodes on separate hosts: network namespaces, a switch, a cut cable (SPEC 3.4; issue 11 point 4).

As root, the test builds a small private network with iproute2 and nothing else:

- one network namespace per host (``<run>-h1`` .. ``-h3``) and one for the switch (``<run>-sw``),
  where ``<run>`` is ``tally-mh-<pid of pytest>-<random>``;
- in the switch namespace a bridge ``br0``; each host is joined to it by a veth pair, ``eth0`` in
  the host and ``pN`` on the bridge;
- each host has its own address ``10.213.<random>.N/24`` on ``eth0``. Those addresses exist only
  inside these namespaces: no route leads to them from the machine's own namespace, and nothing
  in them routes anywhere else, so every packet stays on this private switch.

Each host runs ``tally-node run --bind 10.213.X.N --port 18844 --peer <the two others>`` through
``ip netns exec``. The test itself lives in the machine's namespace and so cannot reach those
addresses: it asks the nodes through a tiny Python client started in the node's own namespace.

Scenario: the three nodes connect; host 1 mines and all follow. Host 3's cable is pulled at the
switch (its bridge port set down); every node notices (the pinger drops the silent peers). Host 1
mines 2 blocks, which host 2 follows, while host 3 mines 3 (more work). The cable goes back in and
nothing else is done: the nodes reconnect by themselves (connector redial with backoff, or a
ping that gets through), and every node ends on host 3's chain with the same UTXO set hash.

Clean-up: the ``net`` fixture stops the nodes, kills whatever still runs in the namespaces and
deletes them in a ``finally``; an ``atexit`` hook does the same should the fixture not run, and a
sweep at start removes ``tally-mh-*`` namespaces left by an earlier run whose process is gone.
Without root or without a working ``ip netns`` the test fails, saying so: it is never skipped.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.functional.node_process import address_of, tally_node_command
from tests.helpers import key
from tests.integration.netns import (
    ip,
    namespaces,
    pid_alive,
    remove_namespace,
    stop_process_groups,
)

PREFIX = "tally-mh-"
PORT = 18844
API = "/api/v1"
HOSTS = 3
A1, A3 = address_of(key(1).pubkey_hash), address_of(key(3).pubkey_hash)

# Runs inside a host's namespace: one HTTP request, the answer as JSON on stdout.
QUERY = r"""
import json, os, sys, urllib.error, urllib.request
method, url, body = sys.argv[1:4]
headers = {"Content-Type": "application/json"}
if os.environ.get("TALLY_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["TALLY_TOKEN"]
request = urllib.request.Request(url, body.encode() or None, headers, method=method)
try:
    with urllib.request.urlopen(request, timeout=20) as r:
        status, data = r.status, r.read()
except urllib.error.HTTPError as err:
    status, data = err.code, err.read()
print(json.dumps({"status": status, "body": data.decode("utf-8", "replace")}))
"""


# --- iproute2 (the helpers of tests/integration/netns.py) ----------------------------------


def sweep_stale() -> None:
    """Remove the namespaces of earlier runs of this test whose pytest process is gone."""
    for ns in namespaces():
        found = re.fullmatch(rf"{re.escape(PREFIX)}(\d+)-[0-9a-f]+-\w+", ns)
        if found and not pid_alive(int(found.group(1))):
            remove_namespace(ns)


def require_netns() -> None:
    """Fail (never skip) when this machine cannot build the test network."""
    if os.geteuid() != 0:
        pytest.fail("test_multihost needs root: it creates network namespaces with `ip netns`")
    if shutil.which("ip") is None:
        pytest.fail("test_multihost needs iproute2's `ip` (scripts/test.sh installs it as root)")
    probe = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "set", "lo", "up")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        pytest.fail(f"`ip netns` does not work here, so hosts cannot be simulated: {err}")
    finally:
        remove_namespace(probe)


# --- the hosts and their switch ----------------------------------------------------------------


@dataclass
class Host:
    n: int
    ns: str
    address: str
    datadir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{PORT}"

    @property
    def log_path(self) -> Path:
        return self.datadir.parent / f"h{self.n}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method: str, path: str, body: Any = None, admin: bool = False) -> str:
        """One request from inside this host's namespace; the body of a 200 answer."""
        env = dict(os.environ)
        env.pop("TALLY_TOKEN", None)
        if admin:
            cookie = (self.datadir / ".cookie").read_text().strip()
            env["TALLY_TOKEN"] = cookie.split(":", 1)[1]
        data = "" if body is None else json.dumps(body)
        url = self.url + path
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", QUERY, method, url, data],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        if done.returncode != 0:
            raise OSError(f"h{self.n} {method} {path}: {done.stderr.strip().splitlines()[-1:]}")
        answer = json.loads(done.stdout)
        if answer["status"] != 200:
            raise AssertionError(f"h{self.n} {method} {path}: {answer}")
        return str(answer["body"])

    def get(self, path: str) -> Any:
        return json.loads(self.request("GET", API + path))

    def tip(self) -> str:
        return self.request("GET", API + "/blocks/tip/hash")

    def connected(self) -> set[str]:
        return {p["url"] for p in self.get("/peers")["connected"]}

    def generate(self, count: int, address: str) -> list[str]:
        body = {"count": count, "address": address}
        hashes: list[str] = json.loads(self.request("POST", API + "/admin/generate", body, True))[
            "hashes"
        ]
        return hashes


@dataclass
class Net:
    """Three hosts on one switch, each with a node; everything removed by ``close``."""

    root: Path
    run: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}")
    subnet: int = field(default_factory=lambda: 1 + secrets.randbelow(254))
    hosts: list[Host] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.run}-sw"

    def _add_ns(self, ns: str) -> None:
        ip("netns", "add", ns)
        self.created.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")

    def build(self) -> None:
        self._add_ns(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for n in range(1, HOSTS + 1):
            ns = f"{self.run}-h{n}"
            self._add_ns(ns)
            tmp = f"tmh{secrets.token_hex(4)}"  # renamed to eth0 once inside the host
            # Both ends are created straight in their namespaces, never in the machine's own.
            veth = f"link add {tmp} netns {ns} type veth peer name p{n} netns {self.switch}"
            ip(*veth.split())
            ip("-n", ns, "link", "set", tmp, "name", "eth0")
            address = f"10.213.{self.subnet}.{n}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", self.switch, "link", "set", f"p{n}", "master", "br0")
            ip("-n", self.switch, "link", "set", f"p{n}", "up")
            self.hosts.append(Host(n, ns, address, self.root / f"h{n}"))

    def start_nodes(self) -> None:
        for host in self.hosts:
            host.datadir.mkdir(parents=True)
            peers = [arg for h in self.hosts if h is not host for arg in ("--peer", h.url)]
            in_ns = ["ip", "netns", "exec", host.ns]
            settings = ["--network", "regtest", "--datadir", str(host.datadir)]
            settings += ["--bind", host.address, "--port", str(PORT)]
            with host.log_path.open("ab") as log:
                host.proc = subprocess.Popen(
                    [*in_ns, *tally_node_command(), "run", *settings, *peers],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for host in self.hosts:
            self.wait(lambda h=host: h.get("/info"), f"h{host.n}'s node to answer", 60)

    def cut(self, host: Host) -> None:
        """Pull ``host``'s cable out of the switch."""
        ip("-n", self.switch, "link", "set", f"p{host.n}", "down")

    def restore(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", f"p{host.n}", "up")

    def logs(self) -> str:
        return "\n".join(f"--- h{h.n} ({h.url}) ---\n{h.log()[-6000:]}" for h in self.hosts)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for host in self.hosts:
                if host.proc is not None and host.proc.poll() is not None:
                    raise AssertionError(f"h{host.n}'s node exited\n{self.logs()}")
            try:
                last = condition()
            except (OSError, KeyError, ValueError, AssertionError) as err:
                last = err
            else:
                if last:
                    return last
            time.sleep(0.3)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what} ({last!r})\n{self.logs()}"
        )

    def close(self) -> None:
        stop_process_groups([host.proc for host in self.hosts], grace=10)
        for ns in reversed(self.created):
            remove_namespace(ns)
        left = [ns for ns in namespaces() if ns.startswith(self.run)]
        assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    require_netns()
    sweep_stale()
    network = Net(tmp_path)
    atexit.register(lambda: [remove_namespace(ns) for ns in network.created])
    try:
        network.build()
        network.start_nodes()
        yield network
    finally:
        network.close()


def test_partitioned_host_rejoins_and_all_converge_on_most_work(net: Net) -> None:
    h1, h2, h3 = net.hosts
    everyone = {h.url for h in net.hosts}

    def linked(host: Host, expected: set[str]) -> bool:
        return host.connected() == expected

    # 1. Three hosts, each with two peers; host 1 mines and everyone follows.
    for host in net.hosts:
        net.wait(lambda h=host: linked(h, everyone - {h.url}), f"h{host.n} to see both peers", 30)
    common = h1.generate(5, A1)[-1]
    net.wait(lambda: all(h.tip() == common for h in net.hosts), "every node at height 5", 30)

    # 2. Host 3's cable is pulled; each side notices that the other is gone.
    net.cut(h3)
    net.wait(
        lambda: linked(h1, {h2.url}) and linked(h2, {h1.url}) and linked(h3, set()),
        "both sides to drop the peers they cannot reach",
        75,  # a ping every 10 s; one to a silent peer times out after 30 s
    )

    # 3. Both sides mine: 2 blocks for hosts 1-2, 3 for host 3 (the most work).
    side_a = h1.generate(2, A1)[-1]
    net.wait(lambda: h2.tip() == side_a, "h2 to follow h1 during the partition", 30)
    side_b = h3.generate(3, A3)[-1]
    assert h3.tip() == side_b and h1.tip() == side_a
    assert h3.get("/info")["height"] == 8 and h1.get("/info")["height"] == 7

    # 4. The cable goes back in; nothing else is done: the nodes find each other again.
    net.restore(h3)
    started = time.monotonic()
    net.wait(
        lambda: all(h.tip() == side_b for h in net.hosts),
        "every node to reorganise onto h3's chain",
        90,
    )
    rejoined = time.monotonic() - started
    net.wait(
        lambda: all(linked(h, everyone - {h.url}) for h in net.hosts),
        "every node to be connected to both peers again",
        60,
    )
    infos = [h.get("/info") for h in net.hosts]
    assert {i["best_hash"] for i in infos} == {side_b}, infos
    assert {i["chainwork"] for i in infos} == {infos[2]["chainwork"]}, infos
    assert all(i["synced"] for i in infos), infos
    utxo = [h.get("/utxo-set-info") for h in net.hosts]
    assert utxo[0] == utxo[1] == utxo[2], utxo
    assert utxo[0]["height"] == 8
    for host in (h1, h2):
        assert "reorganising: 2 block(s) off the chain at height 5" in host.log(), host.log()
    for host in net.hosts:
        text = host.log()
        assert "Traceback" not in text and " ERROR " not in text, text
    print(f"converged {rejoined:.1f} s after the link came back")
