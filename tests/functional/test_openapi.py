"""The OpenAPI document (``node.api.openapi``) against the app and a running regtest node.

- the document is valid OpenAPI 3.1, and its routes are exactly those the aiohttp app registers
  (read from the app's own router, so a route added without its description fails here);
- a real node serves it and answers every documented route (none is an unknown route);
- with real data (blocks, a confirmed and an unconfirmed spend, a submitted block, P2P messages)
  every operation answers 200 and the answer conforms to its schema;
- a bounded Schemathesis run (its coverage phase, unexpected methods included, then 30
  derandomized examples per operation and generation mode, positive and negative) with every
  check (``--checks all``) on the public and admin routes, and the four response checks
  (``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
  ``response_schema_conformance``) on ``/p2p/``, finds nothing. Left out: the admin routes that
  stop the node, mine, start mining, dial a peer, shift the clock, clear the mempool or replace
  blocks, and the ``/p2p/`` messages that make the node dial URLs. Addresses, account keys,
  cursors, transactions and blocks are drawn (half) real (``schemathesis_hooks``), and no
  operation has the run's "schema validation mismatch" in any phase (none of its schema-valid
  requests served, most refused as invalid);
- every path answers a method it does not serve with 405 and ``Allow``;
- hostile inputs (that once gave a 500, or might) stay 4xx with the error shape.

One node serves the whole module; it is started with ``NodeProcess`` (the real ``tally-node``).
Schemathesis runs through its Python API: its lazy pytest parametrization (``from_fixture``) fails
under pytest 9.2 (``'Function' object has no attribute '_nodeid'``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from types import SimpleNamespace
from typing import Any, cast

import hypothesis
import jsonschema_rs
import msgpack
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import not_a_server_error
from schemathesis.cli.commands.run.warnings import StatusCodeStatistic
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, CoverageScenario
from schemathesis.hooks import HookContext
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from schemathesis.transport.serialization import Binary, serialize_binary

from consensus import (
    ExtendedPublicKey,
    OutPoint,
    Transaction,
    TxOut,
    encode_xpub,
    get_params,
)
from node.api.app import make_app
from node.api.openapi import openapi_document
from node.config import Settings
from node.p2p.messages import PROTOCOL_VERSION
from node.p2p.routes import add_p2p_routes
from tests.functional import schemathesis_hooks  # registers its generators and hook
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key, mine_block, spend

API = "/api/v1"
MAX_EXAMPLES = 30  # per operation and generation mode
MAX_COVERAGE_CASES = 200  # per operation; none has more today
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ALL_CHECKS = CHECK_REGISTRY.get_all()
"""Every check Schemathesis has (``--checks all``): with the four above, among others
``negative_data_rejection`` (what the schema refuses, the node refuses),
``positive_data_acceptance`` (what it admits is answered or refused with a documented 4xx),
``unsupported_method`` (405 with ``Allow``), ``missing_required_header``, ``ignored_auth``."""
ACCEPTED_POSITIVE = ["2xx", "400", "401", "403", "404", "409", "429"]
"""What a request the schema admits may get: an answer, or a documented refusal (a bad address
checksum, an unknown block: ``status_code_conformance`` holds each status to the operation's
list). 400 is added to Schemathesis's default; its 5xx is left out (``not_a_server_error``)."""
REJECTED_NEGATIVE = [*map(str, (400, 401, 403, 404, 405, 406, 409, 414, 415, 422, 428, 429)), "5xx"]
"""How a request the schema refuses may be refused: Schemathesis's default list, and 414 (the URL
beyond ``node.api.guards.MAX_URL_BYTES``: a refused text parameter of 2,047 characters outside
its pattern, each a 4-byte UTF-8 character, is 24 KB once percent-encoded)."""
NOT_FUZZED = {
    # They act on the node: stop it, mine (up to 10,000 blocks), start background mining,
    # or dial a peer URL.
    ("POST", f"{API}/admin/stop"),
    ("POST", f"{API}/admin/generate"),
    ("POST", f"{API}/admin/mining"),
    ("POST", f"{API}/admin/peers"),
    # The devnet toolkit's: they shift the clock, start mining, empty the mempool, replace blocks.
    ("POST", f"{API}/admin/time"),
    ("POST", f"{API}/admin/automine"),
    ("POST", f"{API}/admin/mempool/clear"),
    ("POST", f"{API}/admin/reorg"),
    # They copy the node's state, or replace it with a copy: a revert to a snapshot the fuzzer
    # took would take away the chain the other cases rely on.
    ("POST", f"{API}/admin/snapshot"),
    ("POST", f"{API}/admin/revert"),
    # The node dials the URLs a handshake or an addr message carries. (The other /p2p/ routes
    # are fuzzed: misbehaviour scores may get the test's peer keys banned, a documented 403.)
    ("POST", "/p2p/handshake"),
    ("POST", "/p2p/addr"),
}


# --- (de)serializers Schemathesis needs for this API ---------------------------------------------


def _packable(value: Any) -> Any:
    if isinstance(value, list):
        return [_packable(v) for v in value]
    if isinstance(value, dict):
        return {k: _packable(v) for k, v in value.items()}
    if isinstance(value, Binary):
        return value.data
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)  # msgpack has no such integer; still a wrong type for the node
    return value


@schemathesis.serializer("application/msgpack")
def _msgpack_body(ctx: Any, value: Any) -> bytes:
    """Bytes as they are (a serialized transaction or block); an array (``POST /txs``) or a map
    (a ``/p2p/`` message) packed as msgpack, its binary strings as ``bin``."""
    if isinstance(value, list | dict):
        return cast(bytes, msgpack.packb(_packable(value), use_bin_type=True))
    return serialize_binary(value)


@schemathesis.deserializer("text/plain")
def _text_answer(ctx: Any, response: Any) -> str:
    """Tip height and hash, block-height and metrics answer text: check it as a string."""
    return cast(str, response.content.decode("utf-8"))


# --- the node and its data -----------------------------------------------------------------------


@dataclass
class Chain:
    """A regtest node with 106 blocks, a confirmed spend and one in the mempool."""

    node: NodeProcess
    miner: str  # address of key(0): every coinbase
    payee: str  # address of key(1): both spends
    block1: str  # hash of block 1
    coinbase1: str  # txid of block 1's coinbase (spent by ``confirmed``)
    confirmed: str  # txid of a spend in block 106
    pending: str  # txid of a spend in the mempool

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.token}"}


def coinbase_of(node: NodeProcess, height: int) -> tuple[str, int]:
    block_hash = node.get(f"{API}/block-height/{height}").body.decode()
    txid: str = node.get(f"{API}/block/{block_hash}/txids").json()[0]
    amount: int = node.get(f"{API}/tx/{txid}").json()["outputs"][0]["amount"]
    return txid, amount


def payment(node: NodeProcess, height: int, fee: int = 20_000) -> Transaction:
    """A spend of the coinbase of block ``height`` (key 0) to key 1, with change."""
    txid, amount = coinbase_of(node, height)
    return spend(
        [(OutPoint(bytes.fromhex(txid)[::-1], 0), TxOut(amount, key(0).pubkey_hash), key(0))],
        [
            TxOut(amount - 10_000_000 - fee, key(1).pubkey_hash),
            TxOut(10_000_000, key(0).pubkey_hash),
        ],
    )


def pay(node: NodeProcess, height: int) -> str:
    """Submit ``payment(node, height)``; its txid."""
    r = node.post_raw(f"{API}/tx", payment(node, height).serialize())
    assert r.status == 200, r.body
    answer: str = r.json()["txid"]
    return answer


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    node = NodeProcess(tmp_path_factory.mktemp("openapi") / "n1").start()
    try:
        miner = address_of(key(0).pubkey_hash)
        node.generate(105, miner)  # coinbases 1 to 6 mature for the next block
        confirmed = pay(node, 1)
        node.generate(1, miner)
        pending = pay(node, 2)
        yield Chain(
            node=node,
            miner=miner,
            payee=address_of(key(1).pubkey_hash),
            block1=node.get(f"{API}/block-height/1").body.decode(),
            coinbase1=coinbase_of(node, 1)[0],
            confirmed=confirmed,
            pending=pending,
        )
    finally:
        node.stop()


@pytest.fixture(scope="module")
def api_schema(chain: Chain) -> Any:
    """The document as the node serves it, loaded by Schemathesis."""
    schema = schemathesis.openapi.from_url(f"{chain.node.url}{API}/openapi.json")
    schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED_POSITIVE
    schema.config.checks.negative_data_rejection.expected_statuses = REJECTED_NEGATIVE
    return schema


# --- the document against the app ----------------------------------------------------------------


def documented_routes() -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = openapi_document()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def app_routes() -> set[tuple[str, str]]:
    """Every (method, path) the aiohttp app registers (HEAD is aiohttp's automatic twin of GET).

    ``make_app`` only keeps a reference to the service, so a stand-in is enough to build the
    real router.
    """
    stand_in = SimpleNamespace(call=None, read=None, settings=Settings(port=1))
    app = make_app(
        cast(Any, stand_in), cast(Any, None), [lambda a: add_p2p_routes(a, cast(Any, None))]
    )
    routes = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"
        if route.method != "HEAD":
            routes.add((route.method, path))
    return routes


def test_document_is_valid_openapi_31() -> None:
    document = openapi_document()
    OPENAPI_31_VALIDATOR.validate(document)
    assert document["openapi"] == "3.1.0"
    # Every reference resolves, and operation ids are unique.
    text = json.dumps(document)
    components = document["components"]
    for kind in ("schemas", "responses"):
        for name in components[kind]:
            assert f'"#/components/{kind}/{name}"' in text or kind == "responses"
    for part in text.split('"$ref": "#/components/')[1:]:
        kind, name = part.split('"', 1)[0].split("/")
        assert name in components[kind], f"dangling $ref {kind}/{name}"
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # Every path template variable is declared as a path parameter.
    for path, item in document["paths"].items():
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            wanted = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
            assert declared == wanted, path


def test_every_route_of_the_app_is_documented() -> None:
    app, doc = app_routes(), documented_routes()
    assert not app - doc, f"routes missing from the document: {sorted(app - doc)}"
    assert not doc - app, f"documented routes the app does not have: {sorted(doc - app)}"


def test_admin_routes_need_the_token() -> None:
    for path, item in openapi_document()["paths"].items():
        for op in item.values():
            assert ("security" in op) == path.startswith(f"{API}/admin/"), path


# --- the document against a running node ---------------------------------------------------------


XPUB = encode_xpub(
    ExtendedPublicKey(3, bytes(4), 0x80000000, bytes(range(32)), key(1).pubkey),
    get_params("regtest"),
)
"""A well-formed regtest account key (nothing uses its addresses)."""


def fill(path: str, chain: Chain) -> str:
    """``path`` with real values for its variables (and the one required query parameter)."""
    filled = (
        path.replace("{hash}", chain.block1)
        .replace("{txid}", chain.confirmed)
        .replace("{height}", "1")
        .replace("{address}", chain.payee)
        .replace("{filename}", "index.html")
        .replace("{xpub}", XPUB)
    )
    return filled + "?q=1" if path == f"{API}/search" else filled


def test_node_serves_the_document(chain: Chain) -> None:
    r = chain.node.get(f"{API}/openapi.json")
    assert r.status == 200
    assert r.json() == json.loads(json.dumps(openapi_document(get_params("regtest"))))


def test_every_documented_route_is_served(chain: Chain) -> None:
    """No documented route is an unknown route (aiohttp's 404 "Not Found") or a 405."""
    unknown = chain.node.get(f"{API}/no-such-route")
    assert unknown.status == 404
    for method, path in sorted(documented_routes()):
        url = fill(path, chain)
        if method == "GET":
            r = chain.node.get(url)
        elif path.startswith("/p2p/"):  # an empty map, from a peer of its own (scores add up)
            # a claimed URL counts only from its own host: a loopback URL per route, so that
            # the scores of the routes' malformed probes do not add up to a ban
            sender = f"http://127.0.0.1:{1 + sum(path.encode()) % 60000}"
            headers = {"Content-Type": "application/msgpack", "X-Tally-Peer": sender}
            r = chain.node.get(url, method="POST", body=b"\x80", headers=headers)
        else:  # an empty object: a 400 or, for admin routes without the token, a 401
            r = chain.node.post_json(url, {})
        assert r.status != 405, (method, path)
        assert (r.status, r.body) != (404, unknown.body), (method, path)
        if path.startswith(f"{API}/admin/"):
            expected = 401
        elif method == "GET" or path == "/p2p/mempool":
            expected = 200
        else:
            expected = 400
        assert r.status == expected, (method, path, r.status, r.body)


def test_a_wrong_method_is_405_with_allow(chain: Chain) -> None:
    """Every path answers a method it does not serve with 405, ``Allow`` naming exactly the
    documented methods (and HEAD, aiohttp's twin of GET), and the error shape (RFC 9110 15.5.6)."""
    served: dict[str, set[str]] = {}
    for method, path in documented_routes():
        served.setdefault(path, set()).add(method)
    for path, methods in sorted(served.items()):
        allowed = methods | ({"HEAD"} if "GET" in methods else set())
        for wrong in sorted({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} - methods):
            r = chain.node.get(fill(path, chain), method=wrong, headers=chain.headers)
            assert r.status == 405, (wrong, path, r.status, r.body[:200])
            assert set(r.headers["Allow"].split(",")) == allowed, (wrong, path, r.headers)
            assert r.json()["error"]["code"] == "method-not-allowed", (wrong, path)


def real_cases(chain: Chain, schema: Any) -> list[Any]:
    """One Schemathesis case with real data for every operation but ``stop``."""
    ops = {(m, p): schema[p][m] for m, p in documented_routes()}

    def case(method: str, path: str, **kw: Any) -> Any:
        return ops[(method, path)].Case(**kw)

    tip = chain.node.get(f"{API}/info").json()
    block = mine_block(
        bytes.fromhex(tip["best_hash"])[::-1],
        tip["height"] + 1,
        [],
        chain.node.get(f"{API}/block/{tip['best_hash']}").json()["time"] + 1,
        key(2).pubkey_hash,
    )
    cases = [
        case("GET", path)
        for method, path in sorted(ops)
        if method == "GET" and "{" not in path and path != f"{API}/search"
    ]
    cases += [
        case("GET", f"{API}/blocks", query={"start_height": 5}),
        case("GET", f"{API}/block-height/{{height}}", path_parameters={"height": 1}),
        case("GET", f"{API}/search", query={"q": "1"}),
        case("GET", f"{API}/search", query={"q": chain.confirmed}),
        case("GET", f"{API}/search", query={"q": chain.block1}),
        case("GET", f"{API}/search", query={"q": chain.payee}),
    ]
    for txid in (chain.confirmed, chain.pending, chain.coinbase1):
        for suffix in ("", "/status", "/raw", "/outspends"):
            cases.append(case("GET", f"{API}/tx/{{txid}}{suffix}", path_parameters={"txid": txid}))
    cases.append(
        case("GET", f"{API}/tx/{{txid}}/merkle-proof", path_parameters={"txid": chain.confirmed})
    )
    for suffix in ("", "/txids", "/txs", "/raw"):
        cases.append(
            case("GET", f"{API}/block/{{hash}}{suffix}", path_parameters={"hash": chain.block1})
        )
    for address in (chain.miner, chain.payee):
        for suffix in ("", "/txs", "/utxo"):
            cases.append(
                case(
                    "GET",
                    f"{API}/address/{{address}}{suffix}",
                    path_parameters={"address": address},
                )
            )
    cases.append(
        case(
            "GET",
            f"{API}/address/{{address}}/txs",
            path_parameters={"address": chain.payee},
            query={"after_txid": chain.pending},
        )
    )
    # Last, as they change the chain: new transactions (one refused in a batch), a new block.
    json_tx, msgpack_tx = payment(chain.node, 4).serialize(), payment(chain.node, 5).serialize()
    cases += [
        case("POST", f"{API}/tx", body={"raw": json_tx.hex()}, media_type="application/json"),
        case(
            "POST",
            f"{API}/txs",
            body=[{"raw": json_tx.hex()}, {"raw": "00"}],
            media_type="application/json",
        ),
        case("POST", f"{API}/txs", body=[msgpack_tx], media_type="application/msgpack"),
        case("POST", f"{API}/block", body=block.serialize(), media_type="application/msgpack"),
        case("POST", f"{API}/admin/generate", body={"count": 1, "address": chain.miner}),
        case("POST", f"{API}/admin/peers", body={"url": "http://127.0.0.1:1"}),
        case("POST", f"{API}/admin/mining", body={"enabled": False}),
        # The submitted block (and the one generated on it) off the chain, and back.
        case("POST", f"{API}/admin/invalidate", body={"hash": block.hash_hex()}),
        case("POST", f"{API}/admin/reconsider", body={"hash": block.hash_hex()}),
        # A snapshot and a revert to it (nothing changes), a partition and its healing.
        case("POST", f"{API}/admin/snapshot", body={"name": "real-cases"}),
        case("POST", f"{API}/admin/revert", body={"name": "real-cases"}),
        case("POST", f"{API}/admin/partition", body={"peers": ["http://127.0.0.1:1"]}),
        case("POST", f"{API}/admin/heal"),
        # The devnet toolkit's: a second on the clock, no mining, nothing cleared, and last, the
        # tip replaced by two blocks.
        case("POST", f"{API}/admin/time", body={"advance": 1}),
        case("POST", f"{API}/admin/automine", body={"mode": "off"}),
        case("POST", f"{API}/admin/mempool/clear", body={"txids": ["00" * 32]}),
        case("POST", f"{API}/admin/reorg", body={"depth": 1, "address": chain.miner}),
    ]
    return cases


def failure_text(exc: BaseException) -> str:
    if isinstance(exc, FailureGroup):
        return "\n".join(failure_text(e) for e in exc.exceptions)
    if isinstance(exc, Failure):
        return f"{exc.title}: {exc.message}"
    return repr(exc)


def test_real_answers_conform_to_the_document(chain: Chain, api_schema: Any) -> None:
    """Every operation (but ``stop``) with real data: a 200 that matches its schema."""
    problems = []
    for case in real_cases(chain, api_schema):
        label = f"{case.method} {case.formatted_path} {case.query or ''}"
        try:
            response = case.call_and_validate(checks=CHECKS, headers=chain.headers)
        except (Failure, FailureGroup) as exc:
            problems.append(f"{label}\n  {failure_text(exc)}")
            continue
        if response.status_code != 200:
            problems.append(f"{label}\n  {response.status_code} {response.text[:300]}")
    assert not problems, "\n".join(problems)


def as_json(value: Any) -> Any:
    """A decoded msgpack answer in JSON terms: each ``bin`` becomes a (placeholder) string."""
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def test_p2p_answers_conform_to_the_document(chain: Chain, api_schema: Any) -> None:
    """Each ``/p2p/`` route with a real message: a 200 msgpack map of the documented shape."""
    params = get_params("regtest")
    genesis = params.genesis_hash
    block1 = bytes.fromhex(chain.block1)[::-1]
    messages: dict[str, dict[str, Any]] = {
        "handshake": {
            "magic": params.magic,
            "genesis": genesis,
            "version": PROTOCOL_VERSION,
            "height": 0,
            "work": bytes(32),
            "url": "http://127.0.0.1:1",  # nobody listens there: the node's dials fail at once
            "nonce": bytes(range(8)),
        },
        "inv": {"kind": "block", "hashes": [block1]},
        "getdata": {"kind": "block", "hashes": [block1]},
        "getheaders": {"locator": [genesis], "stop": bytes(32)},
        "addr": {"urls": []},
        "mempool": {},
    }
    document = openapi_document()
    problems = []
    for name, message in messages.items():
        path = f"/p2p/{name}"
        case = api_schema[path]["POST"].Case(
            body=message,
            media_type="application/msgpack",
            headers={"X-Tally-Peer": "http://127.0.0.1:1"},
        )
        try:
            response = case.call_and_validate(checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            problems.append(f"{path}: {failure_text(exc)}")
            continue
        if response.status_code != 200:
            problems.append(f"{path}: {response.status_code} {response.text[:300]}")
            continue
        answer = msgpack.unpackb(response.content, raw=False)
        schema = document["paths"][path]["post"]["responses"]["200"]["content"]
        validator = jsonschema_rs.Draft202012Validator(schema["application/msgpack"]["schema"])
        problems += [f"{path}: {e.message}" for e in validator.iter_errors(as_json(answer))]
    assert not problems, "\n".join(problems)
    # The handshake made us a connected peer: /peers lists it in the documented shape.
    peers = api_schema[f"{API}/peers"]["GET"].Case()
    peers.call_and_validate(checks=CHECKS)


# --- fuzzing -------------------------------------------------------------------------------------


def checks_for(operation: Any) -> list[Any]:
    """Every check on the node's own API (public and admin routes); the four of ``CHECKS`` on
    ``/p2p/``, whose schemas cannot say what a peer may send (the body limit in bytes, a
    ``bin``'s exact length): a schema-valid message there may be refused (400, 413)."""
    return CHECKS if operation.path.startswith("/p2p/") else ALL_CHECKS


Positive = dict[tuple[str, str], Counter[int]]
"""The statuses of the positive cases, by phase and operation (``schemathesis run`` judges its
warnings on each phase's scenario apart)."""


def record(case: Any, status: int, positive: Positive) -> None:
    """Count ``status`` if ``case`` is positive and not a probe of the request's shape (another
    method, another content type), as ``schemathesis run`` does."""
    meta = case.meta
    if meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if getattr(meta.phase.data, "scenario", None) in REQUEST_SHAPE_PROBES:
        return
    positive[(meta.phase.name.value, case.operation.label)][status] += 1


def mismatched(positive: Positive) -> set[tuple[str, str]]:
    """The (phase, operation) pairs with Schemathesis's "schema validation mismatch" warning:
    no positive case served and at least ``OTHER_CLIENT_ERRORS_THRESHOLD`` of the 4xx ones
    refused as invalid rather than as unknown (its own rule, ``StatusCodeStatistic``)."""
    return {
        where
        for where, counts in positive.items()
        if StatusCodeStatistic(
            counts=dict(counts), total=sum(counts.values())
        ).should_warn_about_validation_mismatch()
    }


def fuzz_operation(
    operation: Any, headers: dict[str, str], stats: Counter[str], positive: Positive
) -> list[str]:
    """Schemathesis on one operation; the failures, each with a curl command to reproduce it.

    Two phases, as ``schemathesis run`` has them: coverage (deterministic boundary and
    invalid values, positive and negative, and each method the route does not serve) and
    fuzzing (``MAX_EXAMPLES`` derandomized Hypothesis examples per mode, shrunk on failure).
    The coverage cases go through the hooks' ``map_case`` as ``schemathesis run`` has them do
    (the fuzzing strategy applies it itself). ``stats`` counts the cases run, by phase, and the
    unexpected-method ones; ``positive`` gets the statuses of the positive ones (``record``).
    """
    failures: list[str] = []
    schema = operation.schema
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    coverage = schema.iter_coverage_cases(
        operation,
        generation_modes=modes,
        generation_config=schema.config.generation_for(operation=operation),
    )
    cases = list(islice(coverage, MAX_COVERAGE_CASES + 1))
    assert len(cases) <= MAX_COVERAGE_CASES, f"{operation.label}: raise MAX_COVERAGE_CASES"
    context = HookContext(operation=operation)
    for drawn in cases:
        case = schemathesis_hooks.map_case(context, drawn)
        stats["coverage"] += 1
        if case.meta.phase.data.scenario is CoverageScenario.UNSPECIFIED_HTTP_METHOD:
            stats["unexpected method"] += 1
        try:
            response = case.call_and_validate(checks=checks_for(operation), headers=headers)
        except (Failure, FailureGroup) as exc:
            failures.append(f"coverage: {exc}")
            break
        record(case, response.status_code, positive)
    for mode in modes:

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate, Phase.shrink],
        )
        def fuzz(case: Any) -> None:
            stats[f"fuzzing {case.meta.generation.mode.value}"] += 1
            response = case.call_and_validate(checks=checks_for(operation), headers=headers)
            record(case, response.status_code, positive)

        try:
            fuzz()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to make invalid: no input
        except (Failure, FailureGroup) as exc:
            failures.append(f"fuzzing ({mode.value}): {exc}")
    return failures


def test_schemathesis_finds_nothing(chain: Chain, api_schema: Any) -> None:
    """No 5xx, no answer outside the document and no "schema validation mismatch", on every
    operation but ``NOT_FUZZED``."""
    report = []
    tested = set()
    stats: Counter[str] = Counter()
    positive: Positive = defaultdict(Counter)
    for result in api_schema.get_all_operations():
        operation = result.ok()
        route = (operation.method.upper(), operation.path)
        if route in NOT_FUZZED:
            continue
        tested.add(route)
        for failure in fuzz_operation(operation, chain.headers, stats, positive):
            report.append(f"=== {operation.label}\n{failure}")
    served = sum(n for counts in positive.values() for s, n in counts.items() if s < 300)
    print(f"schemathesis: {len(tested)} operations, cases run: {dict(stats)}, served {served}")
    # Every operation serves some schema-valid request in each phase (a real address, cursor,
    # transaction or block: ``schemathesis_hooks``), or refuses them as unknown (a 404).
    warned = {
        f"{phase} {label}": dict(positive[(phase, label)]) for phase, label in mismatched(positive)
    }
    assert not warned, f"validation mismatch (positive statuses): {warned}"
    # Schemathesis leaves out the route it loaded the document from.
    assert tested == documented_routes() - NOT_FUZZED - {("GET", f"{API}/openapi.json")}
    assert not report, "\n\n".join(report)


# --- hostile input --------------------------------------------------------------------------------

DEEP_JSON = b"[" * 100_000


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        # 500s today: json.loads raises RecursionError on deep nesting.
        ("POST", f"{API}/tx", DEEP_JSON, "application/json"),
        ("POST", f"{API}/txs", DEEP_JSON, "application/json"),
        ("POST", f"{API}/block", b'{"raw":' * 100_000, "application/json"),
        # 4xx today (the first was a 500: '²'.isdigit() but int('²') raised): keep them so.
        ("GET", f"{API}/search?q=%C2%B2", None, None),
        ("POST", f"{API}/txs", b"\x91" * 100_000 + b"\xc0", "application/msgpack"),
        ("POST", f"{API}/tx", b"\x91" * 100_000 + b"\xc0", "application/msgpack"),
        ("GET", f"{API}/block-height/%C2%B2", None, None),
        ("GET", f"{API}/address/%00", None, None),
    ],
)
def test_hostile_input_is_a_client_error(
    chain: Chain, method: str, path: str, body: bytes | None, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = chain.node.get(path, method=method, body=body, headers=headers)
    assert 400 <= r.status < 500, (r.status, r.body[:300])
    error = r.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)


def test_admin_route_with_hostile_json_is_a_client_error(chain: Chain) -> None:
    r = chain.node.get(
        f"{API}/admin/peers",
        method="POST",
        body=DEEP_JSON,
        headers={"Content-Type": "application/json", **chain.headers},
    )
    assert r.status == 400, (r.status, r.body[:300])


@pytest.mark.parametrize(
    "url", ["http://0*", "http://", "http://a:0", "http://a:65536", "http://a?x"]
)
def test_a_partition_refuses_what_its_schema_refuses(chain: Chain, url: str) -> None:
    """Regression (Schemathesis, ST201): ``POST /admin/partition`` took ``http://0*``, which its
    documented pattern (``client.models.PEER_URL_PATTERN``) refuses; the route now checks that
    pattern, and nothing was partitioned."""
    r = chain.node.post_json(f"{API}/admin/partition", {"peers": [url]}, admin=True)
    assert r.status == 400, (r.status, r.body[:300])
    assert r.json()["error"]["code"] == "bad-request"
    assert chain.node.get(f"{API}/peers").json()["partitioned"] == []


def test_side_chain_block_txs_conform(chain: Chain, api_schema: Any) -> None:
    """A block stored off the best chain, holding a spend: its transactions match the schema."""
    tip = chain.node.get(f"{API}/info").json()
    parent = chain.node.get(f"{API}/block/{tip['best_hash']}").json()
    prev_hash = parent["prev_hash"]  # a sibling of the tip: same work, so it stays a side block
    txid, amount = coinbase_of(chain.node, 6)
    tx = spend(
        [(OutPoint(bytes.fromhex(txid)[::-1], 0), TxOut(amount, key(0).pubkey_hash), key(0))],
        [TxOut(amount - 1_000, key(1).pubkey_hash)],
    )
    block = mine_block(
        bytes.fromhex(prev_hash)[::-1],
        tip["height"],
        [tx],
        parent["time"] + 1,
        key(3).pubkey_hash,
        fees=1_000,
    )
    r = chain.node.post_raw(f"{API}/block", block.serialize())
    assert r.status == 200 and r.json()["status"] == "side", r.body
    op = api_schema[API + "/block/{hash}/txs"]["GET"]
    case = op.Case(path_parameters={"hash": block.hash_hex()})
    response = case.call(headers=chain.headers)
    assert response.status_code == 200
    try:
        case.validate_response(response, checks=CHECKS)
    except (Failure, FailureGroup) as exc:
        pytest.fail(f"{failure_text(exc)}\n{json.dumps(response.json()[1], indent=1)}")
