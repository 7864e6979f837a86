"""Cross-site and DNS-rebinding requests to a real node are refused (SPEC 3.5; issue 16 defect 10).

A web page in the user's browser could drive a node on 127.0.0.1: a ``text/plain`` POST with a
foreign ``Origin`` reached transaction decoding, and a request naming a foreign ``Host`` (a name
the attacker rebinds to 127.0.0.1) was answered. Now (``node/api/guards.py``):

- a ``Host`` that does not name the node gets 403 ``forbidden`` before anything else (before the
  admin token check, before routing: even an unknown path);
- a state-changing request whose ``Origin`` is not the node's own gets 403;
- a body that is not ``application/json`` (``charset=utf-8`` allowed) or ``application/msgpack``
  gets 415 ``unsupported-media-type``; P2P routes included;
- ``--allow-host NAME`` (or ``TALLY_ALLOW_HOST``) lets a name through;
- a request target (URL) over 8,190 bytes gets a JSON 414 ``uri-too-long`` and a header line
  over 8,190 bytes a JSON 431, however long, with no ERROR or traceback in the log (issue 17);
- the explorer page (same-origin, with the ``Origin`` browsers send on POSTs too), the wallet's
  client and the node's own peers keep working.

Each refused request carries a VALID transaction, so that "the mempool is unchanged" shows the
guard stopped it, not the transaction's own checks.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client.http import Client
from consensus import Block, OutPoint, Transaction, TxOut
from tests.functional.node_process import NodeProcess, Response, address_of, http
from tests.helpers import key, spend

API = "/api/v1"
K0, K1 = key(0), key(1)
A0 = address_of(K0.pubkey_hash)
FEE = 10_000


@dataclass
class Env:
    node: NodeProcess
    blocks: list[Block]
    next_coinbase: int = 1

    def host(self, name: str = "127.0.0.1") -> str:
        return f"{name}:{self.node.port}"

    def payment(self) -> Transaction:
        """A valid payment from the next unused mature coinbase (never sent before)."""
        cb = self.blocks[self.next_coinbase].txs[0]
        self.next_coinbase += 1
        coin = (OutPoint(cb.txid(), 0), cb.outputs[0], K0)
        return spend([coin], [TxOut(cb.outputs[0].amount - FEE, K1.pubkey_hash)])

    def txids(self) -> list[str]:
        r = self.node.get(API + "/mempool/txids")
        assert r.status == 200, r.body
        txids: list[str] = r.json()
        return txids

    def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> Response:
        fixed = {k.replace("_", "-"): v for k, v in headers.items()}
        return http(self.node.url + path, method, body, fixed)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    node = NodeProcess(tmp_path_factory.mktemp("guards") / "n")
    node.start()
    try:
        node.generate(110, A0)
        blocks = []
        for height in range(31):
            h = node.get(f"{API}/block-height/{height}").body.decode()
            blocks.append(Block.deserialize(node.get(f"{API}/block/{h}/raw").body))
        yield Env(node, blocks)
    finally:
        node.stop()


def forbidden(r: Response, status: int = 403, code: str = "forbidden") -> str:
    assert r.status == status, (r.status, r.body[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    message: str = err["message"]
    return message


def json_tx(tx: Transaction) -> bytes:
    return json.dumps({"raw": tx.serialize().hex()}).encode()


# --- Host ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "attacker.test:{port}",
        "127.0.0.1.nip.io:{port}",
        "127.0.0.1:1",
        "[::2]:{port}",
    ],
)
def test_a_foreign_host_is_refused_on_every_route_before_anything_else(env: Env, host: str) -> None:
    name = host.format(port=env.node.port)
    # A read (what DNS rebinding would steal), an unknown path (no 404 first), an admin route
    # without a token (no 401 first), a P2P route with a text body (no 415 first).
    forbidden(env.request("GET", API + "/info", Host=name))
    forbidden(env.request("GET", "/", Host=name))
    forbidden(env.request("GET", API + "/no-such-route", Host=name))
    forbidden(env.request("POST", API + "/admin/stop", b"{}", Host=name, Content_Type="text/plain"))
    forbidden(env.request("POST", "/p2p/handshake", b"x", Host=name, Content_Type="text/plain"))
    before = env.txids()
    r = env.request(
        "POST", API + "/tx", json_tx(env.payment()), Host=name, Content_Type="application/json"
    )
    forbidden(r)
    assert env.txids() == before
    assert env.node.proc is not None and env.node.proc.poll() is None


def test_the_loopback_names_with_the_node_port_are_answered(env: Env) -> None:
    for name in ("127.0.0.1", "localhost", "LOCALHOST", "[::1]"):
        r = env.request("GET", API + "/info", Host=env.host(name))
        assert r.status == 200, (name, r.body[:200])
        assert r.json()["network"] == "regtest"


def raw(env: Env, request: bytes) -> tuple[bytes, bytes]:
    """One HTTP/1.0 request as given, byte for byte; the answer's head and body."""
    with socket.create_connection(("127.0.0.1", env.node.port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_a_request_without_host_is_refused(env: Env) -> None:
    head, body = raw(env, b"GET /api/v1/info HTTP/1.0\r\n\r\n")
    assert b" 403 " in head.split(b"\r\n")[0], head
    assert json.loads(body)["error"]["code"] == "forbidden"


# --- the size of the request line and headers (issue 17) ---------------------------------------

URL_LIMIT = 8190
"""The documented limit of a request target (docs/API.md), written out: the contract, not the
constant in ``node.api.guards``."""


def target_of(length: int) -> str:
    """A request target of exactly ``length`` bytes that ``/info`` answers (it ignores ``pad``)."""
    prefix = API + "/info?pad="
    return prefix + "a" * (length - len(prefix))


def raw_get(env: Env, target: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """``GET target`` over a bare socket (urllib and most clients refuse long URLs): status,
    headers (lower-case names) and body."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {env.host()}", "Connection: close", *headers]
    head, body = raw(env, ("\r\n".join(lines) + "\r\n\r\n").encode())
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body


def assert_quiet_log(env: Env, since: int) -> None:
    """Nothing the operator must act on: no ERROR, no traceback, nothing from aiohttp's logger
    (at the default level a refused request costs no log line at all)."""
    time.sleep(0.3)
    new = env.node.log()[since:]
    assert "ERROR" not in new and "Traceback" not in new, new
    assert "aiohttp" not in new and "WARNING" not in new, new


@pytest.mark.parametrize(
    "length",
    [
        URL_LIMIT + 1,  # the first byte over: answered by the guards middleware
        2 * URL_LIMIT,  # still read whole by the parser, answered by the middleware
        2 * URL_LIMIT + 200,  # past the parser's own line limit: answered by its error handler
        100_000,
    ],
)
def test_a_url_over_the_limit_is_a_json_414_and_a_quiet_log(env: Env, length: int) -> None:
    since = len(env.node.log())
    status, headers, body = raw_get(env, target_of(length))
    assert status == 414, (status, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert err["code"] == "uri-too-long", err
    assert "8,190 bytes" in err["message"], err
    assert_quiet_log(env, since)
    assert env.node.get(API + "/info").status == 200  # still serving


def test_a_url_of_exactly_the_limit_is_served(env: Env) -> None:
    since = len(env.node.log())
    status, _, body = raw_get(env, target_of(URL_LIMIT))
    assert status == 200, (status, body[:300])
    assert json.loads(body)["network"] == "regtest"
    assert_quiet_log(env, since)


def test_a_foreign_host_with_a_long_url_is_refused_for_its_length_first(env: Env) -> None:
    """The length is checked before anything else, as the parser's own limit is (which knows
    nothing of hosts): one answer for one URL whichever side of the parser's limit it is."""
    lines = f"GET {target_of(URL_LIMIT + 1)} HTTP/1.0\r\nHost: evil.example\r\n\r\n"
    head, body = raw(env, lines.encode())
    assert b" 414 " in head.split(b"\r\n")[0], head
    assert json.loads(body)["error"]["code"] == "uri-too-long"


def test_a_header_line_over_the_limit_is_a_json_431(env: Env) -> None:
    since = len(env.node.log())
    status, headers, body = raw_get(env, API + "/info", "X-Pad: " + "b" * 9000)
    assert status == 431, (status, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    assert json.loads(body)["error"]["code"] == "request-header-fields-too-large"
    status, _, body = raw_get(env, API + "/info", "X-Pad: " + "b" * 8000)
    assert status == 200, (status, body[:300])
    assert_quiet_log(env, since)


def test_a_request_line_aiohttp_cannot_parse_is_a_json_400(env: Env) -> None:
    since = len(env.node.log())
    head, body = raw(env, b"GET /api/v1/info HTTP/1.1 junk\r\nHost: " + env.host().encode()
                     + b"\r\n\r\n")  # fmt: skip
    assert b" 400 " in head.split(b"\r\n")[0], head
    assert json.loads(body)["error"]["code"] == "bad-request"
    assert_quiet_log(env, since)


# --- Origin and Content-Type ---------------------------------------------------------------------


def test_a_text_plain_post_from_a_foreign_page_is_refused_and_changes_nothing(env: Env) -> None:
    """What a form or ``fetch(..., {mode: "no-cors"})`` on any web page can send."""
    tx = env.payment()
    before = env.txids()
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{env.node.port + 1}"):
        r = env.request("POST", API + "/tx", json_tx(tx), Origin=origin, Content_Type="text/plain")
        forbidden(r)
    # JSON from a foreign origin (a browser would preflight it; a non-browser may not): 403.
    r = env.request(
        "POST", API + "/tx", json_tx(tx), Origin="http://evil.example",
        Content_Type="application/json",
    )  # fmt: skip
    forbidden(r)
    # The same text/plain body without an Origin (curl, a script): 415.
    for content_type in (
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/msgpack; charset=utf-8",
        "application/x-msgpack",
        "application/octet-stream",
        "application/jsonx",
    ):
        r = env.request("POST", API + "/tx", json_tx(tx), Content_Type=content_type)
        forbidden(r, 415, "unsupported-media-type")
    r = env.request("POST", API + "/tx", tx.serialize(), Content_Type="application/x-msgpack")
    forbidden(r, 415, "unsupported-media-type")
    body = json_tx(tx)
    head, answer = raw(
        env, b"POST /api/v1/tx HTTP/1.0\r\nHost: " + env.host().encode()
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    )  # fmt: skip
    assert b" 415 " in head.split(b"\r\n")[0], head  # no Content-Type at all
    assert json.loads(answer)["error"]["code"] == "unsupported-media-type"
    assert env.txids() == before, "a refused request changed the mempool"
    # And the same transaction, sent properly, is accepted: it was the guard that refused it.
    r = env.request("POST", API + "/tx", json_tx(tx), Content_Type="application/json")
    assert r.status == 200, r.body
    assert r.json()["txid"] in env.txids()


def test_p2p_routes_are_guarded_too(env: Env) -> None:
    for content_type in ("text/plain", "application/json", "application/x-msgpack"):
        r = env.request("POST", "/p2p/inv", b"\x80", Content_Type=content_type)
        forbidden(r, 415, "unsupported-media-type")
    r = env.request(
        "POST", "/p2p/inv", b"\x80", Origin="http://evil.example",
        Content_Type="application/msgpack",
    )  # fmt: skip
    forbidden(r)


def test_the_explorers_own_origin_passes(env: Env) -> None:
    """Browsers send ``Origin`` on same-origin POSTs: the page's own origin must pass."""
    page = env.request("GET", "/", Host=env.host(), Origin=f"http://{env.host()}")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert env.request("GET", "/static/app.js", Host=env.host()).status == 200
    # A read from any origin is answered (no CORS header, so a foreign page cannot read it).
    r = env.request("GET", API + "/info", Origin="http://evil.example")
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    for name in ("127.0.0.1", "localhost"):
        tx = env.payment()
        r = env.request(
            "POST", API + "/tx", json_tx(tx), Host=env.host(name),
            Origin=f"http://{env.host(name)}", Content_Type="application/json; charset=utf-8",
        )  # fmt: skip
        assert r.status == 200, (name, r.body)
        assert tx.txid()[::-1].hex() in env.txids()
    # Same host, another port, or a page served by localhost posting to 127.0.0.1: foreign.
    r = env.request(
        "POST", API + "/tx", json_tx(env.payment()), Host=env.host("127.0.0.1"),
        Origin=f"http://{env.host('localhost')}", Content_Type="application/json",
    )  # fmt: skip
    forbidden(r)


def test_the_wallet_client_works(env: Env) -> None:
    client = Client(env.node.url)
    assert client.info().network == "regtest"
    tx = env.payment()
    txid = client.post_tx(tx.serialize())
    assert client.tx(txid).txid == txid
    assert txid in env.txids()


def test_an_empty_post_needs_no_content_type(env: Env) -> None:
    """``POST /admin/stop`` has nothing to say: no body, no type, no 415 (401 without token)."""
    r = http(env.node.url + API + "/admin/stop", "POST", b"", {})
    forbidden(r, 401, "unauthorized")


# --- --allow-host --------------------------------------------------------------------------------


def test_allow_host_lets_a_name_through(tmp_path: Path) -> None:
    node = NodeProcess(
        tmp_path / "n", "--allow-host", "tally.example", "--allow-host", "Node.Example.",
        env={"TALLY_ALLOW_HOST": "ignored.example"},
    )  # fmt: skip
    with node:
        for name in ("tally.example", "node.example", "TALLY.EXAMPLE"):
            r = http(node.url + API + "/info", headers={"Host": f"{name}:{node.port}"})
            assert r.status == 200, (name, r.body[:200])
        # A flag replaces the environment's list (flags win, as for every setting).
        for name in ("ignored.example", "evil.example", "tally.example.evil"):
            forbidden(http(node.url + API + "/info", headers={"Host": f"{name}:{node.port}"}))
        forbidden(
            http(node.url + API + "/info", headers={"Host": f"tally.example:{node.port + 1}"})
        )
        # The allowed name is the node's own origin for POSTs as well.
        r = http(
            node.url + API + "/tx", "POST", b"{}",
            {"Host": f"tally.example:{node.port}", "Origin": f"http://tally.example:{node.port}",
             "Content-Type": "application/json"},
        )  # fmt: skip
        forbidden(r, 400, "bad-request")  # past the guards: the body is not a transaction


def test_allow_host_from_the_environment(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", env={"TALLY_ALLOW_HOST": "a.example, b.example"})
    with node:
        for name in ("a.example", "b.example"):
            r = http(node.url + API + "/info", headers={"Host": f"{name}:{node.port}"})
            assert r.status == 200, (name, r.body[:200])
        forbidden(http(node.url + API + "/info", headers={"Host": f"c.example:{node.port}"}))


def test_a_wildcard_bind_answers_ip_literals_and_localhost_but_not_names(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 every address of the machine is the node's own; a rebinding page can
    only use a name, so names still need ``--allow-host`` (docs/DECISIONS.md)."""
    with NodeProcess(tmp_path / "n", "--bind", "0.0.0.0") as node:
        for name in ("127.0.0.1", "10.1.2.3", "[fe80::1]", "localhost"):
            r = http(node.url + API + "/info", headers={"Host": f"{name}:{node.port}"})
            assert r.status == 200, (name, r.body[:200])
        for host in (f"node.example:{node.port}", f"10.1.2.3:{node.port + 1}"):
            forbidden(http(node.url + API + "/info", headers={"Host": host}))


def test_a_bad_allow_host_is_a_clear_start_up_error(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "n", "--allow-host", "evil.example/path")
    with pytest.raises(RuntimeError, match="allow_host"):
        node.start(timeout=60)


# --- peers ---------------------------------------------------------------------------------------


def test_two_nodes_still_talk_to_each_other(tmp_path: Path) -> None:
    """Peers reach each other at http://127.0.0.1:PORT with msgpack bodies and no Origin."""
    a = NodeProcess(tmp_path / "a")
    with a:
        b = NodeProcess(tmp_path / "b", "--peer", a.url)
        with b:
            a.generate(3, A0)
            deadline = time.monotonic() + 120
            height = -1
            while time.monotonic() < deadline:
                height = b.get(API + "/info").json()["height"]
                if height == 3:
                    break
                time.sleep(0.2)
            assert height == 3, f"the peer did not sync: height {height}\n{b.log()[-3000:]}"
            assert "forbidden" not in a.log() and "unsupported" not in a.log()
