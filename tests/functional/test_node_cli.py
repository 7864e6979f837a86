"""``tally-node`` as an operator runs it (SPEC 3.6): the installed command in a subprocess.

Covers the admin cookie, the bind address, where settings come from (flag, then ``TALLY_*``
environment, then the ``--config`` TOML file, then defaults: both through real processes, where
the winner is the port the node answers on, and through ``node.config.resolve`` for every
setting), the client subcommands, their errors (one line on stderr, non-zero exit, no
traceback), clean shutdown on SIGTERM and SIGINT with restart on the same data directory, and
``tally-node reindex``.

Only loopback and this machine's own addresses are ever contacted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consensus import COIN, Block, OutPoint, TxOut, get_params
from node.config import ConfigError, Settings, default_datadir, resolve
from tests.functional.node_process import (
    NodeProcess,
    address_of,
    free_port,
    http,
    tally_node_command,
)
from tests.helpers import key, spend

API = "/api/v1"
K0, K1 = key(0), key(1)
A0, A1 = address_of(K0.pubkey_hash), address_of(K1.pubkey_hash)
SUBSIDY = 50 * COIN


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``TALLY_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tally_node_command(), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        check=False,
    )


def client(node: NodeProcess, *args: str) -> list[str]:
    """Arguments that point a client subcommand at ``node``."""
    return [
        *args,
        "--network",
        node.network,
        "--datadir",
        str(node.datadir),
        "--port",
        str(node.port),
    ]


def assert_one_line_error(
    cp: subprocess.CompletedProcess[str], exit_code: int | None = None, *words: str
) -> str:
    """A failed command: non-zero exit, one line on stderr, no traceback; that line."""
    assert cp.returncode != 0, (cp.stdout, cp.stderr)
    if exit_code is not None:
        assert cp.returncode == exit_code, (cp.returncode, cp.stderr)
    assert "Traceback" not in cp.stderr + cp.stdout, cp.stderr
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1, cp.stderr
    line = lines[0]
    assert line.startswith("tally-node: "), line
    for word in words:
        assert word in line, line
    return line


def answers(host: str, port: int) -> bool:
    """True if a Tally node answers /api/v1/info at ``host:port``."""
    try:
        return http(f"http://{host}:{port}{API}/info", timeout=3).status == 200
    except OSError:
        return False


def tcp_refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return False
    except ConnectionRefusedError:
        return True


class Launched:
    """``tally-node run`` with exactly the given arguments (no --port added), answering at
    ``host:port``; stopped with SIGTERM."""

    def __init__(self, log: Path, args: list[str], host: str, port: int, env: dict[str, str]):
        self.host, self.port = host, port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*tally_node_command(), "run", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not answers(host, port):
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no answer at {host}:{port}:\n{log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextlib.contextmanager
def launched(
    log: Path, args: list[str], host: str, port: int, env: dict[str, str] | None = None
) -> Iterator[Launched]:
    node = Launched(log, args, host, port, env if env is not None else clean_env())
    try:
        yield node
    finally:
        code = node.stop()
        assert code == 0, node.log.read_text()


def own_non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one (no packet sent:
    connecting a UDP socket only picks the outgoing interface)."""
    candidates: set[str] = set()
    with contextlib.suppress(OSError):
        candidates.add(socket.gethostbyname(socket.gethostname()))
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        candidates.add(s.getsockname()[0])
    for addr in sorted(candidates):
        ip = ipaddress.ip_address(addr)
        if ip.is_loopback or ip.is_unspecified:
            continue
        try:  # the kernel lets us bind only an address of our own
            with socket.socket() as s:
                s.bind((addr, 0))
        except OSError:
            continue
        return addr
    return None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A running regtest node shared by the client-command tests (never stopped by them)."""
    n = NodeProcess(tmp_path_factory.mktemp("cli") / "n", env=clean_env())
    n.start()
    try:
        yield n
    finally:
        assert n.stop() == 0


def _coinbase_of(node: NodeProcess, height: int) -> Any:
    h = node.get(f"{API}/block-height/{height}").body.decode()
    return Block.deserialize(node.get(f"{API}/block/{h}/raw").body).txs[0]


# --- cookie --------------------------------------------------------------------------------------


def test_cookie_is_private_and_new_at_each_start(tmp_path: Path) -> None:
    n = NodeProcess(tmp_path / "c", env=clean_env())
    cookie = n.datadir / ".cookie"
    tokens = []
    try:
        for _ in range(2):
            n.start()
            assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
            text = cookie.read_text()
            assert re.fullmatch(r"__cookie__:[0-9a-f]{64}\n?", text), text
            tokens.append(n.token)
            assert not (n.datadir / ".cookie.tmp").exists()
            ok = n.post_json(API + "/admin/generate", {"count": 1, "address": A0}, admin=True)
            assert ok.status == 200
            if len(tokens) == 2:  # the previous token no longer opens the admin routes
                old = http(
                    n.url + API + "/admin/generate",
                    "POST",
                    json.dumps({"count": 1, "address": A0}).encode(),
                    {"Authorization": f"Bearer {tokens[0]}", "Content-Type": "application/json"},
                )
                assert old.status == 401
            assert n.stop() == 0
            assert not cookie.exists()  # removed at a clean stop
        assert tokens[0] != tokens[1]
    finally:
        n.kill()


# --- bind address --------------------------------------------------------------------------------


def test_default_bind_is_loopback_only(tmp_path: Path) -> None:
    """Not reachable on 127.0.0.2 (so not bound to 0.0.0.0) nor on this machine's own
    non-loopback address, when it has one. Each address is first shown to reach a listener
    bound to 0.0.0.0, so a refusal means something."""
    others = ["127.0.0.2"]
    own = own_non_loopback_ipv4()
    if own is not None:
        others.append(own)
    with NodeProcess(tmp_path / "b", env=clean_env()) as n:
        assert answers("127.0.0.1", n.port)
        log = n.log()
        assert f"listening on http://127.0.0.1:{n.port}" in log
        for addr in others:
            with socket.socket() as control:
                control.bind(("0.0.0.0", 0))  # a local control listener
                control.listen()
                with socket.create_connection((addr, control.getsockname()[1]), timeout=3):
                    pass
            assert tcp_refused(addr, n.port), f"the node answers on {addr}"


def test_bind_flag(tmp_path: Path) -> None:
    port = free_port()
    d = tmp_path / "d"
    args = ["--network", "regtest", "--datadir", str(d), "--port", str(port)]
    with launched(tmp_path / "bind.log", [*args, "--bind", "127.0.0.2"], "127.0.0.2", port):
        assert tcp_refused("127.0.0.1", port)
        cp = cli("info", *args, "--bind", "127.0.0.2")  # the client follows --bind
        assert cp.returncode == 0, cp.stderr
        assert json.loads(cp.stdout)["network"] == "regtest"


# --- where settings come from --------------------------------------------------------------------


def test_port_from_file_env_and_flag(tmp_path: Path) -> None:
    """The port in the file, overridden by TALLY_PORT, overridden by --port: the node answers
    on the winner and nowhere else."""
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    assert len({file_port, env_port, flag_port}) == 3
    d = tmp_path / "data"
    conf = tmp_path / "tally.toml"
    conf.write_text(f'network = "regtest"\ndatadir = "{d}"\nport = {file_port}\n')
    log = tmp_path / "p.log"

    with launched(log, ["--config", str(conf)], "127.0.0.1", file_port):
        pass
    with launched(log, [], "127.0.0.1", file_port, clean_env(TALLY_CONFIG=str(conf))):
        pass
    env = clean_env(TALLY_PORT=str(env_port))
    with launched(log, ["--config", str(conf)], "127.0.0.1", env_port, env):
        assert tcp_refused("127.0.0.1", file_port)
    with launched(
        log, ["--config", str(conf), "--port", str(flag_port)], "127.0.0.1", flag_port, env
    ):
        assert tcp_refused("127.0.0.1", file_port)
        assert tcp_refused("127.0.0.1", env_port)
    # the data directory came from the file every time: one chain there, cookie gone
    assert (d / "chainstate").is_dir()
    assert not (d / ".cookie").exists()


def test_network_from_env_beats_file(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "tally.toml"
    conf.write_text(f'network = "test"\ndatadir = "{tmp_path / "d"}"\nport = {port}\n')
    env = clean_env(TALLY_NETWORK="regtest", TALLY_LOG_LEVEL="warning")
    with launched(tmp_path / "n.log", ["--config", str(conf)], "127.0.0.1", port, env):
        info = http(f"http://127.0.0.1:{port}{API}/info").json()
        assert info["network"] == "regtest"
    # log level warning (from the environment): the info lines are not written
    assert "listening on" not in (tmp_path / "n.log").read_text()


FILE = {
    "network": "test",
    "datadir": "/tmp/tally-file",
    "bind": "10.0.0.1",
    "port": 1001,
    "peers": ["http://file:1"],
    "mine_to": "rFILE",
    "block_time": 1.5,
    "log_level": "debug",
}
ENV = {
    "TALLY_NETWORK": "regtest",
    "TALLY_DATADIR": "/tmp/tally-env",
    "TALLY_BIND": "10.0.0.2",
    "TALLY_PORT": "1002",
    "TALLY_PEERS": "http://env:1, http://env:2",
    "TALLY_MINE_TO": "rENV",
    "TALLY_BLOCK_TIME": "2.5",
    "TALLY_LOG_LEVEL": "WARNING",
}
FLAGS: dict[str, Any] = {
    "network": "main",
    "datadir": "/tmp/tally-flag",
    "bind": "10.0.0.3",
    "port": 1003,
    "peers": ["http://flag:1"],
    "mine_to": "rFLAG",
    "block_time": 3.5,
    "log_level": "error",
}
FROM_FILE = Settings(
    "test", Path("/tmp/tally-file"), "10.0.0.1", 1001, ("http://file:1",), "rFILE", 1.5, "debug"
)
FROM_ENV = Settings(
    "regtest",
    Path("/tmp/tally-env"),
    "10.0.0.2",
    1002,
    ("http://env:1", "http://env:2"),
    "rENV",
    2.5,
    "warning",
)
FROM_FLAGS = Settings(
    "main", Path("/tmp/tally-flag"), "10.0.0.3", 1003, ("http://flag:1",), "rFLAG", 3.5, "error"
)


def _toml(values: dict[str, Any]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def test_resolve_defaults() -> None:
    assert resolve({}, {}) == Settings(
        "main", default_datadir("main"), "127.0.0.1", get_params("main").default_port
    )
    regtest = resolve({"network": "regtest"}, {})
    assert regtest.datadir == Path.home() / ".tally" / "regtest"
    assert regtest.port == get_params("regtest").default_port == 18844
    assert regtest.peers == () and regtest.mine_to is None and regtest.block_time is None
    assert regtest.log_level == "info" and regtest.bind == "127.0.0.1"
    # flags not given (None, or an empty --peer list) do not count
    assert resolve(dict.fromkeys(FLAGS) | {"peers": []}, {}) == resolve({}, {})


def test_resolve_precedence_for_every_setting(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(_toml(FILE))
    assert resolve({}, {}, conf) == FROM_FILE
    assert resolve({}, {"TALLY_CONFIG": str(conf)}) == FROM_FILE
    assert resolve({}, ENV) == FROM_ENV
    assert resolve({}, ENV, conf) == FROM_ENV
    assert resolve(FLAGS, ENV, conf) == FROM_FLAGS
    assert resolve(FLAGS, {}) == FROM_FLAGS
    # setting by setting: each layer wins over the ones below it, and only for that setting
    for name in FILE:
        var = "TALLY_PEERS" if name == "peers" else f"TALLY_{name.upper()}"
        one_env = {var: ENV[var]}
        mixed = resolve({}, one_env, conf)
        assert getattr(mixed, name) == getattr(FROM_ENV, name), name
        for other in FILE:
            if other != name:
                assert getattr(mixed, other) == getattr(FROM_FILE, other), (name, other)
        flagged = resolve({name: FLAGS[name]}, ENV, conf)
        assert getattr(flagged, name) == getattr(FROM_FLAGS, name), name
        for other in FILE:
            if other != name:
                assert getattr(flagged, other) == getattr(FROM_ENV, other), (name, other)
    # the datadir and port defaults follow the network, wherever it came from
    only_network = tmp_path / "n.toml"
    only_network.write_text('network = "test"\n')
    s = resolve({}, {}, only_network)
    assert (s.datadir, s.port) == (default_datadir("test"), get_params("test").default_port)
    s = resolve({"network": "regtest"}, {}, only_network)
    assert (s.datadir, s.port) == (default_datadir("regtest"), 18844)
    # an explicit config path wins over TALLY_CONFIG
    explicit = tmp_path / "o.toml"
    explicit.write_text("port = 4242\n")
    assert resolve({}, {"TALLY_CONFIG": str(conf)}, explicit).port == 4242


@pytest.mark.parametrize(
    ("flags", "environ", "toml", "words"),
    [
        ({"port": 0}, {}, None, ["--port"]),
        ({"port": 65536}, {}, None, ["--port"]),
        ({"log_level": "loud"}, {}, None, ["--log-level"]),
        ({"block_time": -1.0}, {}, None, ["--block-time"]),
        ({"peers": ["ftp://x"]}, {}, None, ["--peer"]),
        ({"network": "moon"}, {}, None, ["--network"]),
        ({}, {"TALLY_PORT": "abc"}, None, ["TALLY_PORT"]),
        ({}, {"TALLY_PORT": "true"}, None, ["TALLY_PORT"]),
        ({}, {"TALLY_BLOCK_TIME": "nan"}, None, ["TALLY_BLOCK_TIME"]),
        ({}, {"TALLY_BLOCK_TIME": "0"}, None, ["TALLY_BLOCK_TIME"]),
        ({}, {"TALLY_NETWORK": "moon"}, None, ["TALLY_NETWORK"]),
        ({}, {"TALLY_PEERS": "http://ok,gopher://no"}, None, ["TALLY_PEERS"]),
        ({}, {}, 'port = "x"\n', ["config file", "port"]),
        ({}, {}, "port = true\n", ["config file", "port"]),
        ({}, {}, "port = 70000\n", ["config file", "port"]),
        ({}, {}, 'bind = ""\n', ["config file", "bind"]),
        ({}, {}, 'peers = "http://a"\nport = 1\nfoo = 1\n', ["foo"]),
        ({}, {}, "port = \n", ["config file"]),
        ({}, {}, "peers = [1, 2]\n", ["config file", "peers"]),
    ],
)
def test_resolve_rejects_bad_values(
    tmp_path: Path,
    flags: dict[str, Any],
    environ: dict[str, str],
    toml: str | None,
    words: list[str],
) -> None:
    path = None
    if toml is not None:
        path = tmp_path / "bad.toml"
        path.write_text(toml)
    with pytest.raises(ConfigError) as raised:
        resolve(flags, environ, path)
    for word in words:
        assert word in str(raised.value)


def test_resolve_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve({}, {}, tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve({}, {"TALLY_CONFIG": str(tmp_path / "missing.toml")})


# --- client subcommands --------------------------------------------------------------------------


def test_info_command(node: NodeProcess) -> None:
    cp = cli(*client(node, "info"))
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == node.get(API + "/info").json()


def test_generate_command(node: NodeProcess) -> None:
    before = node.get(API + "/info").json()["height"]
    cp = cli(*client(node, "generate", "3", "--to", A1))
    assert cp.returncode == 0, cp.stderr
    hashes = json.loads(cp.stdout)["hashes"]
    assert len(hashes) == 3
    assert node.get(API + "/info").json()["height"] == before + 3
    for i, h in enumerate(hashes):
        assert node.get(f"{API}/block-height/{before + 1 + i}").body.decode() == h
    assert _coinbase_of(node, before + 1).outputs[0] == TxOut(SUBSIDY, K1.pubkey_hash)


def test_add_peer_command(node: NodeProcess, tmp_path: Path) -> None:
    other = NodeProcess(tmp_path / "other", env=clean_env())
    other.start()
    try:
        cp = cli(*client(node, "add-peer", other.url))
        assert cp.returncode == 0, cp.stderr
        assert json.loads(cp.stdout) == {"added": other.url, "connected": True}
        assert other.url in [p["url"] for p in node.get(API + "/peers").json()["connected"]]
    finally:
        assert other.stop() == 0


def test_stop_command(tmp_path: Path) -> None:
    n = NodeProcess(tmp_path / "s", env=clean_env())
    n.start()
    try:
        cp = cli(*client(n, "stop"))
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.strip() == "stopping"
        assert n.proc is not None and n.proc.wait(30) == 0
        assert not (n.datadir / ".cookie").exists()
        assert not answers("127.0.0.1", n.port)
    finally:
        n.kill()


# --- client and start-up errors ------------------------------------------------------------------


def test_client_errors_without_a_node(tmp_path: Path) -> None:
    port = str(free_port())
    where = ["--network", "regtest", "--datadir", str(tmp_path / "none"), "--port", port]
    assert_one_line_error(cli("info", *where), 1, "cannot reach")
    assert_one_line_error(cli("generate", "1", "--to", A0, *where), 1, "cookie")
    assert_one_line_error(cli("add-peer", "http://127.0.0.1:9", *where), 1, "cookie")
    assert_one_line_error(cli("stop", *where), 1, "cookie")
    # a cookie left behind by a node that is gone
    d = tmp_path / "stale"
    d.mkdir()
    (d / ".cookie").write_text("__cookie__:" + "ab" * 32)
    stale = ["--network", "regtest", "--datadir", str(d), "--port", port]
    assert_one_line_error(cli("stop", *stale), 1, "cannot reach")


def test_client_errors_from_a_running_node(node: NodeProcess, tmp_path: Path) -> None:
    height = node.get(API + "/info").json()["height"]
    assert_one_line_error(
        cli(*client(node, "generate", "1", "--to", A0[:-1] + "x")), 1, "bad-address"
    )
    assert_one_line_error(cli(*client(node, "generate", "0", "--to", A0)), 1, "count")
    # a wrong token (another data directory's cookie)
    d = tmp_path / "wrong"
    d.mkdir()
    (d / ".cookie").write_text("__cookie__:" + "cd" * 32)
    where = ["--network", "regtest", "--datadir", str(d), "--port", str(node.port)]
    assert_one_line_error(cli("generate", "1", "--to", A0, *where), 1, "unauthorized")
    assert_one_line_error(cli("stop", *where), 1, "unauthorized")
    assert node.get(API + "/info").json()["height"] == height
    assert node.proc is not None and node.proc.poll() is None


@pytest.mark.parametrize(
    ("args", "environ", "toml", "words"),
    [
        (["run", "--log-level", "loud"], {}, None, ["log-level"]),
        (["run", "--block-time", "-1"], {}, None, ["block-time"]),
        (["run", "--peer", "ftp://x"], {}, None, ["peer"]),
        (["info"], {"TALLY_PORT": "abc"}, None, ["TALLY_PORT"]),
        (["run"], {"TALLY_NETWORK": "moon"}, None, ["TALLY_NETWORK"]),
        (["run", "--config", "{toml}"], {}, 'port = "x"\n', ["config file", "port"]),
        (["run", "--config", "{toml}"], {}, "colour = 1\n", ["colour"]),
        (["run", "--config", "{toml}"], {}, "port = \n", ["config file"]),
        (["run"], {"TALLY_CONFIG": "{toml}"}, "port = 0\n", ["config file", "port"]),
        (["run", "--config", "{missing}"], {}, None, ["does not exist"]),
    ],
)
def test_bad_settings_are_one_line(
    tmp_path: Path, args: list[str], environ: dict[str, str], toml: str | None, words: list[str]
) -> None:
    conf = tmp_path / "bad.toml"
    if toml is not None:
        conf.write_text(toml)
    subst = {"{toml}": str(conf), "{missing}": str(tmp_path / "missing.toml")}
    args = [subst.get(a, a) for a in args]
    environ = {k: subst.get(v, v) for k, v in environ.items()}
    # always an explicit datadir, so nothing can touch ~/.tally even if a check were missing
    env = clean_env(TALLY_DATADIR=str(tmp_path / "d"), **environ)
    cp = cli(*args, env=env, timeout=30)
    assert_one_line_error(cp, 2, *words)
    assert not (tmp_path / "d" / "chainstate").exists()


def test_generate_is_refused_on_the_test_network(tmp_path: Path) -> None:
    n = NodeProcess(tmp_path / "t", network="test", env=clean_env())
    n.start()
    try:
        to = address_of(K0.pubkey_hash, "test")
        line = assert_one_line_error(cli(*client(n, "generate", "1", "--to", to)), 1)
        assert "regtest" in line
        assert n.get(API + "/info").json()["height"] == 0
        assert n.get(API + "/info").json()["network"] == "test"
    finally:
        assert n.stop() == 0


def test_port_in_use_fails_cleanly(node: NodeProcess, tmp_path: Path) -> None:
    d = tmp_path / "second"
    cp = cli(
        "run", "--network", "regtest", "--datadir", str(d), "--port", str(node.port), timeout=60
    )
    assert cp.returncode == 1, cp.stderr
    assert "Traceback" not in cp.stderr
    last = cp.stderr.strip().splitlines()[-1]
    assert last.startswith("tally-node: ") and "address already in use" in last, last
    assert not (d / ".cookie").exists()
    assert node.get(API + "/info").status == 200


def test_reindex_errors(node: NodeProcess, tmp_path: Path) -> None:
    assert_one_line_error(
        cli("reindex", "--network", "regtest", "--datadir", str(tmp_path / "none")), 1, "chainstate"
    )
    # the running node holds its database
    cp = cli("reindex", "--network", "regtest", "--datadir", str(node.datadir), timeout=60)
    assert cp.returncode == 1
    assert "Traceback" not in cp.stderr
    assert cp.stderr.strip().splitlines()[-1].startswith("tally-node: ")
    assert node.get(API + "/info").status == 200


# --- shutdown, restart, reindex ------------------------------------------------------------------


def _chain_with_mempool(n: NodeProcess, confirm: bool) -> str:
    """101 blocks to A0, a spend of coinbase 1 (mined in block 102 if ``confirm``); its txid."""
    n.generate(101, A0)
    cb1 = _coinbase_of(n, 1)
    tx = spend(
        [(OutPoint(cb1.txid(), 0), cb1.outputs[0], K0)],
        [TxOut(COIN, K1.pubkey_hash), TxOut(SUBSIDY - COIN - 10_000, K0.pubkey_hash)],
    )
    r = n.post_raw(API + "/tx", tx.serialize())
    assert r.status == 200, r.body
    if confirm:
        n.generate(1, A1)
    return tx.txid()[::-1].hex()


def _state(n: NodeProcess, txid: str) -> dict[str, Any]:
    paths = ["/info", "/mempool", "/mempool/txids", f"/tx/{txid}", "/utxo-set-info"]
    paths += [f"/address/{A0}", f"/address/{A1}/utxo", "/blocks"]
    state = {p: n.get(API + p).json() for p in paths}
    state["/info"].pop("peers")
    return state


def test_sigterm_then_restart_keeps_tip_and_mempool(tmp_path: Path) -> None:
    n = NodeProcess(tmp_path / "r", env=clean_env())
    n.start()
    try:
        txid = _chain_with_mempool(n, confirm=False)
        before = _state(n, txid)
        assert before["/mempool/txids"] == [txid]
        assert n.stop() == 0
        n.start()
        assert _state(n, txid) == before
        assert n.stop() == 0
        log = n.log()
        assert log.count("stopped") == 2
        assert "Traceback" not in log
    finally:
        n.kill()


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    n = NodeProcess(tmp_path / "i", env=clean_env())
    n.start()
    try:
        n.generate(2, A0)
        assert n.proc is not None
        n.proc.send_signal(signal.SIGINT)
        assert n.proc.wait(30) == 0
        assert not (n.datadir / ".cookie").exists()
        assert "stopped" in n.log() and "Traceback" not in n.log()
        n.start()
        assert n.get(API + "/info").json()["height"] == 2
        assert n.stop() == 0
    finally:
        n.kill()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_while_mining_leaves_no_process(tmp_path: Path) -> None:
    """Mining back to back (proof-of-work workers busy): SIGTERM still ends the node and its
    worker processes promptly, with status 0."""
    n = NodeProcess(tmp_path / "m", "--mine-to", A0, env=clean_env())
    n.start()
    try:
        deadline = time.monotonic() + 20
        while n.get(API + "/info").json()["height"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert n.get(API + "/info").json()["height"] >= 3
        assert n.proc is not None
        began = time.monotonic()
        assert n.stop(timeout=30) == 0
        assert time.monotonic() - began < 15
        # nothing left in the node's process group (helpers may take a moment to be reaped)
        deadline = time.monotonic() + 10
        while _group_alive(n.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(n.proc.pid), "processes of the node outlive it"
    finally:
        n.kill()


def test_reindex_rebuilds_the_same_chainstate(tmp_path: Path) -> None:
    n = NodeProcess(tmp_path / "x", env=clean_env())
    n.start()
    try:
        txid = _chain_with_mempool(n, confirm=True)
        before = _state(n, txid)
        assert before["/info"]["height"] == 102
        assert n.stop() == 0
        cp = cli("reindex", "--network", "regtest", "--datadir", str(n.datadir), timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert "Traceback" not in cp.stderr
        assert before["/utxo-set-info"]["hash"] in cp.stdout
        assert "height 102" in cp.stdout
        n.start()
        assert _state(n, txid) == before
    finally:
        n.stop()
