"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``, generated (SPEC 3.5).

Job: one route table (``ROUTES``: path, method, parameters, body, answer, error statuses) and a
generator that turns it into the document: the answers' and bodies' schemas come from the models
of ``client.models`` (``msgspec.json.schema_components``), so what is documented is what the
handlers encode. ``tests/functional/test_openapi.py`` checks that the table and the app's router
hold the same routes and fuzzes a running node against the document.

Invariants:
- every limit in a schema or a sentence is imported from the module that enforces it (page
  sizes from ``node.api.views``, the body limit from ``node.api.http``, parameter and batch
  limits from the route modules (``node.api.routes``), URL and header limits from
  ``node.api.guards``, address and key sizes from ``consensus``, ``/p2p/`` limits from
  ``node.p2p``), never written here as a number;
- a path or query parameter's schema admits nothing the handler's parser refuses for its form
  (pattern, length, integer bounds); what it admits and the node still refuses (a bad checksum,
  an unknown block) is a documented 400 or 404;
- an address or account key parameter also names its custom ``format`` (``ADDRESS_FORMAT``,
  ``XPUB_FORMAT``), what no pattern can say (a checksum, the network);
- binary answers (serialized blocks and transactions) are ``format: binary`` under the media
  type they are served with (``application/msgpack``);
- every operation lists the guards' statuses (403, 414, 431, and 415 where it takes a body) and
  the error model; a wrong method is a 405 with ``Allow`` (``node.api.app``).

Left to others: the shapes (``client.models``), the routes themselves (``node.api.routes``,
``node.p2p.routes``), the ``/p2p/`` message formats (``node.p2p.messages``; their schemas here
describe the decoded msgpack map, a ``format: binary`` string standing for a ``bin``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, get_args

import msgspec

from client import models as m
from client.models import API, GAP_LIMIT, MAX_BATCH
from consensus import ExtendedPublicKey, NetworkParams, encode_address, encode_xpub
from consensus.address import PUBKEY_HASH_SIZE
from consensus.extkey import EXTENDED_KEY_SIZE, MAX_TEXT_LENGTH
from consensus.params import REGTEST
from node.api.guards import MAX_HEADER_BYTES, MAX_URL_BYTES
from node.api.http import MAX_BODY
from node.api.routes import toolkit
from node.api.routes.admin import MAX_BLOCK_TIME, MAX_GENERATE
from node.api.routes.blocks import MAX_HEIGHT, MAX_START_INDEX
from node.api.routes.events import HEARTBEAT, MAX_SEQ, MAX_SUBSCRIBE_TEXT, SSE
from node.api.routes.node import MAX_QUERY, STATIC_NAME
from node.api.views import BLOCKS_PAGE, MEMPOOL_RECENT, MEMPOOL_TXIDS_PAGE, TXS_PAGE, UTXO_PAGE
from node.p2p import messages as p2p
from node.p2p import policy as p2p_policy
from node.p2p.policy import BODY_LIMITS, MAX_GETDATA_ANSWER_BYTES, RATE_BURST, RATE_PER_SECOND

Schema = dict[str, Any]

JSON = "application/json"
MSGPACK = "application/msgpack"
TEXT = "text/plain"
HTML = "text/html"
SVG = "image/svg+xml"

CHECKSUM_BYTES = 4
"""Base58Check's checksum."""


def base58_lengths(payload: int) -> tuple[int, int]:
    """The shortest and longest Base58 text of ``payload`` bytes (each leading zero byte is one
    ``1``; otherwise about 1.37 characters a byte)."""
    return payload, math.ceil(payload * 8 / math.log2(58))


ADDRESS_LENGTHS = base58_lengths(1 + PUBKEY_HASH_SIZE + CHECKSUM_BYTES)
XPUB_LENGTHS = base58_lengths(EXTENDED_KEY_SIZE + CHECKSUM_BYTES)
ADDRESS_FORMAT = "tally-address"
XPUB_FORMAT = "tally-xpub"
"""Custom ``format``s naming what a pattern cannot say: a Base58Check text whose checksum holds
and whose version is the node's network's. Validators ignore them; a test generator may fill
them with real values (``tests/functional/schemathesis_hooks.py``)."""
UINT32_DIGITS = len(str(m.MAX_UINT32))
OUTPOINT_PATTERN = f"^[0-9a-fA-F]{{64}}:[0-9]{{1,{UINT32_DIGITS}}}$"
"""An output as ``TXID:N``."""


def string(**keywords: Any) -> Schema:
    return {"type": "string", **keywords}


def integer(minimum: int = 0, maximum: int | None = None, **keywords: Any) -> Schema:
    schema: Schema = {"type": "integer", "minimum": minimum, **keywords}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def binary(description: str) -> Schema:
    return {"type": "string", "format": "binary", "description": description}


# --- the route table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # path, query or header
    schema: Schema
    description: str
    required: bool = False

    def document(self, examples: dict[str, str]) -> Schema:
        schema = self.schema
        if self.name in examples:
            schema = {**schema, "examples": [examples[self.name]]}
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "schema": schema,
            "description": self.description,
        }


@dataclass(frozen=True)
class Content:
    """An answer or body that is not a model: its media type and schema."""

    media_type: str
    schema: Schema


Answer = Any  # a model type (``list[m.Block]``...) served as JSON, or a ``Content``


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    answer: Answer
    params: tuple[Param, ...] = ()
    body: dict[str, Answer] | None = None  # media type -> model type or schema
    errors: tuple[int, ...] = ()
    description: str = ""
    admin: bool = False
    body_description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    streams: tuple[Content, ...] = ()
    """More media types of the 200 answer (a stream the request asks for by its headers)."""


def ref(model: Any) -> Schema:
    """A reference to a model's component."""
    return {"$ref": m.REF_TEMPLATE.format(name=model.__name__)}


def page_of(model: Any, size: int) -> Any:
    """A JSON array of ``model`` of at most ``size`` items."""
    return Annotated[list[model], msgspec.Meta(max_length=size)]


HASH = Param(
    "hash",
    "path",
    string(pattern=m.HASH_PATTERN),
    "A block hash: 64 hex characters, display order.",
)
TXID = Param(
    "txid", "path", string(pattern=m.HASH_PATTERN), "A txid: 64 hex characters, display order."
)
ADDRESS = Param(
    "address",
    "path",
    string(
        pattern=m.BASE58_PATTERN,
        minLength=ADDRESS_LENGTHS[0],
        maxLength=ADDRESS_LENGTHS[1],
        format=ADDRESS_FORMAT,
    ),
    "A Base58Check address of the node's network (400 `bad-address` otherwise).",
)
XPUB = Param(
    "xpub",
    "path",
    string(
        pattern=m.BASE58_PATTERN,
        minLength=XPUB_LENGTHS[0],
        maxLength=min(XPUB_LENGTHS[1], MAX_TEXT_LENGTH),
        format=XPUB_FORMAT,
    ),
    "An account-level BIP32 extended public key in this network's version bytes "
    "(`Rpub...` on regtest; 400 `bad-xpub` otherwise, with the reason).",
)
AFTER_TXID = Param(
    "after_txid",
    "query",
    string(pattern=m.HASH_PATTERN),
    "The cursor: the last txid of the previous page (404 if it is not one of the list's).",
)
AFTER_OUTPOINT = Param(
    "after",
    "query",
    string(pattern=OUTPOINT_PATTERN),
    "The cursor: the last output of the previous page, as TXID:N (400 if N is over 2^32-1).",
)
HEX_TEXT = Content(TEXT, string(pattern=m.DISPLAY_HASH_PATTERN, description="display hex"))
RAW = {MSGPACK: Content(MSGPACK, binary("the serialization")), JSON: m.RawObject}
ADMIN_BODY_ERRORS = (400, 401, 413)
TOOLKIT_ERRORS = (401, 403)
REGTEST_ONLY = "Regtest only: 403 `not-allowed` on other networks."


def _object(name: str, schema: Schema) -> Schema:
    """A JSON object with exactly one required field."""
    return {"type": "object", "properties": {name: schema}, "required": [name]}


ROUTES: tuple[Route, ...] = (
    # --- chain and blocks ---
    Route("get", f"{API}/info", "getInfo", "chain", "The node at a glance", m.Info),
    Route(
        "get",
        f"{API}/blocks/tip/height",
        "getTipHeight",
        "chain",
        "The height of the best chain's tip",
        Content(TEXT, string(pattern="^[0-9]+$")),
    ),
    Route("get", f"{API}/blocks/tip/hash", "getTipHash", "chain", "The hash of the tip", HEX_TEXT),
    Route(
        "get",
        f"{API}/blocks",
        "getBlocks",
        "blocks",
        f"The {BLOCKS_PAGE} newest block summaries at or below a height, newest first",
        page_of(m.Block, BLOCKS_PAGE),
        params=(
            Param(
                "start_height",
                "query",
                integer(maximum=MAX_HEIGHT),
                "The highest block to list (default: the tip).",
            ),
        ),
        errors=(400,),
    ),
    Route(
        "get",
        API + "/block/{hash}",
        "getBlock",
        "blocks",
        "A block summary",
        m.Block,
        params=(HASH,),
        errors=(400, 404),
    ),
    Route(
        "get",
        API + "/block/{hash}/txids",
        "getBlockTxids",
        "blocks",
        "The txids of a block, in order",
        list[m.Hash],
        params=(HASH,),
        errors=(400, 404),
    ),
    Route(
        "get",
        API + "/block/{hash}/txs",
        "getBlockTxs",
        "blocks",
        f"The transactions of a block, {TXS_PAGE} a page",
        page_of(m.Transaction, TXS_PAGE),
        params=(
            HASH,
            Param(
                "start_index",
                "query",
                integer(maximum=MAX_START_INDEX, multipleOf=TXS_PAGE, default=0),
                "Position of the first transaction of the page.",
            ),
        ),
        errors=(400, 404),
        description=f"`start_index` is a multiple of {TXS_PAGE} below the block's transaction "
        "count (404 otherwise).",
    ),
    Route(
        "get",
        API + "/block/{hash}/raw",
        "getBlockRaw",
        "blocks",
        "A block's serialization",
        Content(MSGPACK, binary("the block, serialized")),
        params=(HASH,),
        errors=(400, 404),
    ),
    Route(
        "get",
        API + "/block-height/{height}",
        "getBlockHashAtHeight",
        "blocks",
        "The hash of the block at a height of the best chain",
        HEX_TEXT,
        params=(
            Param("height", "path", integer(maximum=MAX_HEIGHT), "A height (404 above the tip)."),
        ),
        errors=(400, 404),
    ),
    Route(
        "post",
        f"{API}/block",
        "submitBlock",
        "blocks",
        "Submit a serialized block (external miners, tests)",
        m.SubmitBlockResult,
        body=RAW,
        body_description="The block",
        errors=(400, 413),
        description="A refused block is a 400 whose code is the reject code.",
    ),
    # --- transactions ---
    *(
        Route(
            "get",
            API + "/tx/{txid}" + suffix,
            operation_id,
            "transactions",
            summary,
            answer,
            params=(TXID,),
            errors=(400, 404),
        )
        for suffix, operation_id, summary, answer in (
            (
                "",
                "getTx",
                "A transaction, confirmed, in the mempool or replaced recently",
                m.Transaction,
            ),
            ("/status", "getTxStatus", "Where a transaction is", m.TxStatus),
            (
                "/raw",
                "getTxRaw",
                "A transaction's serialization",
                Content(MSGPACK, binary("the transaction, serialized")),
            ),
            (
                "/merkle-proof",
                "getTxMerkleProof",
                "The Merkle branch of a confirmed transaction's wtxid (404 while in the mempool)",
                m.MerkleProof,
            ),
            ("/outspends", "getTxOutspends", "What spends each output, in order", list[m.Outspend]),
        )
    ),
    Route(
        "post",
        f"{API}/tx",
        "submitTx",
        "transactions",
        "Submit a serialized transaction to the mempool",
        m.TxidResult,
        body=RAW,
        body_description="The transaction",
        errors=(400, 413),
        description="A refused transaction is a 400 whose code is the reject code.",
    ),
    Route(
        "post",
        f"{API}/txs",
        "submitTxs",
        "transactions",
        f"Submit up to {MAX_BATCH:,} transactions at once",
        page_of(m.TxsItem, MAX_BATCH),
        body={
            MSGPACK: Content(
                MSGPACK,
                {
                    "type": "array",
                    "items": binary("a serialized transaction"),
                    "description": "a msgpack array of bin",
                },
            ),
            JSON: list[m.RawObject],
        },
        body_description="The transactions",
        errors=(400, 413),
        description="Each transaction is accepted or refused on its own: a refusal is an "
        f"`{{error}}` item in the 200 answer. More than {MAX_BATCH:,} is a 400.",
    ),
    # --- addresses and accounts ---
    Route(
        "get",
        API + "/address/{address}",
        "getAddress",
        "addresses",
        "An address's totals and balance",
        m.AddressSummary,
        params=(ADDRESS,),
        errors=(400,),
    ),
    Route(
        "get",
        API + "/address/{address}/txs",
        "getAddressTxs",
        "addresses",
        f"An address's transactions, newest first (unconfirmed first), {TXS_PAGE} a page",
        page_of(m.Transaction, TXS_PAGE),
        params=(ADDRESS, AFTER_TXID),
        errors=(400, 404),
        description="Pass the last txid of a page as `after_txid` to get the next.",
    ),
    Route(
        "get",
        API + "/address/{address}/qr.svg",
        "getAddressQr",
        "addresses",
        "The QR code of the address's payment URI (tally:ADDRESS), as SVG",
        Content(SVG, string(description="an SVG document")),
        params=(ADDRESS,),
        errors=(400,),
    ),
    Route(
        "get",
        API + "/address/{address}/utxo",
        "getAddressUtxos",
        "addresses",
        f"An address's unspent outputs, the mempool's included, {UTXO_PAGE} a page",
        page_of(m.Utxo, UTXO_PAGE),
        params=(ADDRESS, AFTER_OUTPOINT),
        errors=(400,),
        description="Confirmed first, in (txid, index) order; then unconfirmed ones. Pass the "
        "last output of a page as `after=TXID:N` for the next; an empty page is the end.",
    ),
    Route(
        "get",
        API + "/xpub/{xpub}",
        "getXpub",
        "addresses",
        f"An account's totals, balance and used addresses (gap limit {GAP_LIMIT})",
        m.AccountSummary,
        params=(XPUB,),
        errors=(400,),
    ),
    Route(
        "get",
        API + "/xpub/{xpub}/txs",
        "getXpubTxs",
        "addresses",
        f"An account's transactions, newest first, each once, {TXS_PAGE} a page",
        page_of(m.Transaction, TXS_PAGE),
        params=(XPUB, AFTER_TXID),
        errors=(400, 404),
        description="Pass the last txid of a page as `after_txid` to get the next.",
    ),
    Route(
        "get",
        API + "/xpub/{xpub}/utxo",
        "getXpubUtxos",
        "addresses",
        f"An account's unspent outputs with their paths, {UTXO_PAGE} a page",
        page_of(m.AccountUtxo, UTXO_PAGE),
        params=(XPUB, AFTER_OUTPOINT),
        errors=(400,),
        description="Pass the last output of a page as `after=TXID:N` for the next.",
    ),
    # --- mempool and fees ---
    Route("get", f"{API}/mempool", "getMempool", "mempool", "The mempool", m.MempoolSummary),
    Route(
        "get",
        f"{API}/mempool/txids",
        "getMempoolTxids",
        "mempool",
        f"The txids in the mempool, in acceptance order, {MEMPOOL_TXIDS_PAGE:,} a page",
        page_of(m.Hash, MEMPOOL_TXIDS_PAGE),
        params=(AFTER_TXID,),
        errors=(400, 404),
        description="Pass the last txid of a page as `after_txid` for the next.",
    ),
    Route(
        "get",
        f"{API}/mempool/recent",
        "getMempoolRecent",
        "mempool",
        f"The {MEMPOOL_RECENT} transactions accepted last, newest first",
        page_of(m.MempoolRecent, MEMPOOL_RECENT),
    ),
    Route(
        "get",
        f"{API}/fee-estimates",
        "getFeeEstimates",
        "mempool",
        "Fee rates for confirmation targets",
        m.FeeEstimates,
    ),
    # --- the node ---
    Route(
        "get",
        f"{API}/search",
        "search",
        "chain",
        "What a height, block hash, txid, address or account key is",
        m.SearchResult,
        params=(
            Param(
                "q",
                "query",
                string(minLength=1, maxLength=MAX_QUERY, pattern=r"\S"),
                "A height, block hash, txid, address or account key (400 if empty or blank).",
                required=True,
            ),
        ),
        errors=(400, 404),
    ),
    Route("get", f"{API}/utxo-set-info", "getUtxoSetInfo", "chain", "The UTXO set", m.UtxoSetInfo),
    Route("get", f"{API}/peers", "getPeers", "node", "The node's peers", m.Peers),
    Route(
        "get",
        f"{API}/events",
        "getEvents",
        "events",
        "The event stream: a WebSocket, Server-Sent Events, or its state",
        m.EventsInfo,
        params=(
            Param(
                "subscribe",
                "query",
                string(
                    pattern=r"^[a-z]+(:[1-9A-HJ-NP-Za-km-z]+)?(,[a-z]+(:[1-9A-HJ-NP-Za-km-z]+)?)*$",
                    maxLength=MAX_SUBSCRIBE_TEXT - 1,
                ),
                f"Topics, comma-separated (or the parameter repeated), at most "
                f"{m.MAX_EVENT_SUBSCRIPTIONS}: `blocks`, `mempool`, `address:<address>` (400 for "
                "any other). Default: `blocks,mempool`.",
            ),
            Param(
                "since",
                "query",
                integer(maximum=MAX_SEQ),
                "Replay the events after this seq that the ring still holds (an SSE "
                "`Last-Event-ID` header overrides it).",
            ),
        ),
        errors=(400, 429),
        streams=(
            Content(
                SSE,
                string(
                    description="Server-Sent Events: `id: <seq>` and `data: <event JSON>` per "
                    "node event; notices (`gap`, `subscribed`, `error`) are `data:` without an id"
                ),
            ),
        ),
        description="With `Upgrade: websocket` the answer is a WebSocket (101): the node sends "
        "one JSON text message per event or notice (`x-websocket.send`), and the client may send "
        '`{"subscribe": [topics]}` (replacing its topics; answered `subscribed`) and '
        f'`{{"since": seq}}`, each at most {m.MAX_EVENT_MESSAGE:,} bytes (a bad one is '
        "answered `error`). A WebSocket upgrade from a foreign `Origin` is 403. With `Accept: "
        "text/event-stream` the answer is Server-Sent Events. Otherwise it is the stream's "
        f"state. The node keeps the latest {m.EVENT_RING:,} events for replay; a client more "
        f"than {m.EVENT_CLIENT_QUEUE:,} events behind is sent `gap` and dropped; at most "
        f"{m.MAX_EVENT_CLIENTS} clients at once (429 beyond); a ping or an SSE comment every "
        f"{HEARTBEAT:g} s. Shapes: docs/API.md, section Events.",
        extra={
            "x-websocket": {
                "send": {"oneOf": [ref(t) for t in get_args(m.StreamMessage)]},
                "receive": ref(m.EventsRequest),
            }
        },
    ),
    Route(
        "get",
        f"{API}/openapi.json",
        "getOpenApi",
        "node",
        "This document",
        Content(JSON, {"type": "object", "required": ["openapi", "info", "paths"]}),
    ),
    # --- admin ---
    Route(
        "post",
        f"{API}/admin/generate",
        "generate",
        "admin",
        "Mine blocks now (regtest only)",
        m.Generated,
        body={
            JSON: Content(
                JSON,
                {
                    "type": "object",
                    "properties": {
                        "count": integer(minimum=1, maximum=MAX_GENERATE),
                        "address": string(description="where the coinbases pay"),
                    },
                    "required": ["count", "address"],
                },
            )
        },
        body_description="How many blocks, paying whom.",
        errors=ADMIN_BODY_ERRORS,
        description="400 `not-allowed` on networks other than regtest.",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/peers",
        "addPeer",
        "admin",
        "Add a peer URL",
        m.PeerAdded,
        body={JSON: m.AddPeerRequest},
        body_description="The peer's base URL.",
        errors=ADMIN_BODY_ERRORS,
        description="The node dials the URL at once (and keeps it among the addresses to "
        "reconnect to).",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/mining",
        "setMining",
        "admin",
        "Start or stop background mining",
        m.MiningState,
        body={
            JSON: Content(
                JSON,
                {
                    "type": "object",
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "address": string(description="where the coinbases pay (to start)"),
                        "block_time": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": MAX_BLOCK_TIME,
                            "description": "target seconds between blocks",
                        },
                    },
                    "required": ["enabled"],
                },
            )
        },
        body_description="On or off; to start, where to pay and how fast.",
        errors=ADMIN_BODY_ERRORS,
        description="Stopping needs only `enabled: false`.",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/invalidate",
        "invalidateBlock",
        "admin",
        "Mark a block and its descendants invalid",
        m.BlockMarked,
        body={JSON: m.BlockMarkRequest},
        body_description="The block.",
        errors=(*ADMIN_BODY_ERRORS, 404),
        description="Core's `invalidateblock`. If the block is on the active chain, the node "
        "disconnects back to its parent and activates the most-work valid chain left. The mark "
        "stays across restarts; the block, resent, is refused with `duplicate`. 404 `not-found` "
        "for a hash the node does not know; 400 `not-allowed` for the genesis block.",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/reconsider",
        "reconsiderBlock",
        "admin",
        "Clear the invalid marks of a block, its descendants and its ancestors",
        m.BlockMarked,
        body={JSON: m.BlockMarkRequest},
        body_description="The block.",
        errors=(*ADMIN_BODY_ERRORS, 404),
        description="Core's `reconsiderblock`. Then the node activates the most-work chain: a "
        "block that does break a rule fails again and is marked again. 404 `not-found` for a "
        "hash the node does not know.",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/stop",
        "stop",
        "admin",
        "Shut the node down",
        m.Stopping,
        errors=(401,),
        description="Answers, then shuts down cleanly (as SIGTERM does).",
        admin=True,
    ),
    # --- admin: the devnet toolkit (SPEC 6; regtest only) ---
    Route(
        "get",
        f"{API}/admin/time",
        "getTime",
        "admin",
        "The node's clock (regtest only)",
        m.NodeTime,
        errors=TOOLKIT_ERRORS,
        description=f"{REGTEST_ONLY} The clock block templates, median-time checks, "
        "`time-too-new` and the mempool's entry times and expiry follow: the wall clock plus "
        "`offset`.",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/time",
        "setTime",
        "admin",
        "Set or advance the node's clock, as Core's setmocktime (regtest only)",
        m.NodeTime,
        body={
            JSON: Content(
                JSON,
                {
                    "oneOf": [
                        _object(
                            "set",
                            integer(
                                minimum=REGTEST.genesis_time,
                                maximum=toolkit.MAX_TIME,
                                description="the time the clock reads now, Unix seconds",
                            ),
                        ),
                        _object(
                            "advance",
                            integer(
                                minimum=1,
                                maximum=toolkit.MAX_ADVANCE,
                                description="seconds to move the clock forward",
                            ),
                        ),
                        _object(
                            "reset",
                            {"const": True, "description": "back to the wall clock"},
                        ),
                    ]
                },
            )
        },
        body_description="One of `set`, `advance` or `reset`.",
        errors=(*ADMIN_BODY_ERRORS, 403),
        description=f"{REGTEST_ONLY} The clock keeps running from the time set (unlike Core's, "
        "which stands still), and the offset is kept in `<datadir>/clock.json`, so a restart "
        "keeps it. The next block's time is at least the new time; a block more than 2 hours "
        "ahead of it is `time-too-new`. `advance` may not take the clock past "
        f"{toolkit.MAX_TIME} (2100-01-01); `set` and `reset` not more than 2 hours behind the "
        "tip's median time past (the node's next block would be `time-too-new`).",
        admin=True,
    ),
    Route(
        "get",
        f"{API}/admin/automine",
        "getAutomine",
        "admin",
        "The background mining mode (regtest only)",
        m.Automine,
        errors=TOOLKIT_ERRORS,
        description=REGTEST_ONLY,
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/automine",
        "setAutomine",
        "admin",
        "Mine on demand, per transaction, or every S seconds: Anvil's modes (regtest only)",
        m.Automine,
        body={
            JSON: Content(
                JSON,
                {
                    "type": "object",
                    "properties": {
                        "mode": {"enum": list(m.AUTOMINE_MODES)},
                        "interval": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": MAX_BLOCK_TIME,
                            "description": "seconds between blocks (mode `interval` only; "
                            "without it, or `null`, back to back)",
                        },
                        "address": string(
                            description="where the coinbases pay (default: the address "
                            "mining paid last, else `--mine-to`'s)"
                        ),
                    },
                    "required": ["mode"],
                },
            )
        },
        body_description="The mode; for `interval`, the seconds; optionally the address.",
        errors=(*ADMIN_BODY_ERRORS, 403),
        description=f"{REGTEST_ONLY} `off`: blocks only on demand. `tx`: a block as soon as "
        "transactions enter the mempool (those that arrive together share it; at most one "
        "block per accepted batch). `interval`: a block every `interval` seconds (back to "
        "back without one, as `GET` shows that mode). "
        "`POST /admin/mining` sets the same modes (`interval`, or `off`). 400 `bad-address` "
        "when no address is given and the node has none.",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/mempool/clear",
        "clearMempool",
        "admin",
        "Remove transactions from the mempool (regtest only)",
        m.MempoolCleared,
        body={
            JSON: Content(
                JSON,
                {
                    "type": "object",
                    "properties": {
                        "txids": {
                            "type": "array",
                            "items": string(pattern=m.HASH_PATTERN),
                            "maxItems": toolkit.MAX_TXIDS,
                            "description": "only these, with their descendants",
                        }
                    },
                },
            )
        },
        body_description="`{}` for every transaction, or the txids to remove.",
        errors=(*ADMIN_BODY_ERRORS, 403),
        description=f"{REGTEST_ONLY} Without `txids`, every transaction and orphan goes; with "
        "them, each and everything spending from it (txids not in the mempool are passed "
        "over).",
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/reorg",
        "reorg",
        "admin",
        "Replace the last blocks by a longer branch (regtest only)",
        m.Reorged,
        body={
            JSON: Content(
                JSON,
                {
                    "type": "object",
                    "properties": {
                        "depth": integer(
                            minimum=1,
                            maximum=toolkit.MAX_REORG_DEPTH,
                            description="blocks to replace (at most the chain's height)",
                        ),
                        "drop": {
                            "type": "array",
                            "items": string(pattern=m.HASH_PATTERN),
                            "maxItems": toolkit.MAX_TXIDS,
                            "description": "txids of the replaced blocks to leave out of the "
                            "mempool afterwards",
                        },
                        "address": string(
                            description="where the new coinbases pay (default: as automine)"
                        ),
                    },
                    "required": ["depth"],
                },
            )
        },
        body_description="How deep, and what to drop.",
        errors=(*ADMIN_BODY_ERRORS, 403),
        description=f"{REGTEST_ONLY} `depth + 1` coinbase-only blocks, built on the block "
        "`depth` back and submitted as a peer's chain would be, replace the tip: the "
        "transactions of the replaced blocks return to the mempool, except `drop` and their "
        "descendants. 400 `bad-request`, before anything changes, for a depth beyond the "
        "chain's height or a `drop` txid that is not in the replaced blocks; 400 `tip-moved` "
        "if another block took the tip meanwhile (nothing changed).",
        admin=True,
    ),
)


# --- devnet toolkit: snapshots, partitions (regtest only) ----------------------------------------

DEVNET_ONLY = "403 `not-allowed` on networks other than regtest."

SNAPSHOT_ROUTES: tuple[Route, ...] = (
    Route(
        "post",
        f"{API}/admin/snapshot",
        "takeSnapshot",
        "admin",
        "Snapshot the node's whole state (regtest only)",
        m.Snapshot,
        body={JSON: m.SnapshotRequest},
        body_description="The snapshot's name.",
        errors=(*ADMIN_BODY_ERRORS, 403),
        description="Copies the chain, the UTXO set, the indexes and the mempool, as they are "
        "at this moment, under `<datadir>/snapshots/<name>/`. Taking a name again replaces that "
        f"snapshot; a new name past {m.MAX_SNAPSHOTS} snapshots is 400 `too-many-snapshots`, "
        "one that cannot be written (disk full) 400 `snapshot-failed` (nothing changes). "
        + DEVNET_ONLY,
        admin=True,
    ),
    Route(
        "get",
        f"{API}/admin/snapshots",
        "listSnapshots",
        "admin",
        "The node's snapshots, oldest first (regtest only)",
        page_of(m.SnapshotListed, m.MAX_SNAPSHOTS),
        errors=(401, 403),
        description=DEVNET_ONLY,
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/revert",
        "revertToSnapshot",
        "admin",
        "Put the node's whole state back to a snapshot (regtest only)",
        m.Snapshot,
        body={JSON: m.SnapshotRequest},
        body_description="The snapshot's name.",
        errors=(*ADMIN_BODY_ERRORS, 403, 404),
        description="Chain, UTXO set, indexes and mempool become exactly what they were at the "
        "snapshot, without a restart; the snapshot is kept (revert to it again, or retake it). "
        "Mining pauses meanwhile. Every peer is dropped; the peers of before are refused until "
        "they handshake with a new nonce (reverted too), for at most "
        f"{p2p_policy.REVERT_HOLD:g} s or until `heal`. 404 `not-found` for an unknown name, "
        "400 `snapshot-failed` for a snapshot whose copy cannot be opened (nothing changes "
        "either way). " + DEVNET_ONLY,
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/partition",
        "partition",
        "admin",
        "Refuse peers in both directions until heal (regtest only)",
        m.Partitioned,
        body={JSON: m.PartitionRequest},
        body_description="The peers' URLs.",
        errors=(*ADMIN_BODY_ERRORS, 403),
        description="Drops the connections to those peers, sends them nothing and answers "
        "their `/p2p/` requests 403 `partitioned` (matched by their `X-Tally-Peer` URL), added "
        f"to those refused already (at most {m.MAX_PARTITIONED}); answers every URL refused. "
        + DEVNET_ONLY,
        admin=True,
    ),
    Route(
        "post",
        f"{API}/admin/heal",
        "heal",
        "admin",
        "Lift every partition (regtest only)",
        m.Healed,
        errors=(401, 403),
        description="Every refused peer (partitioned, or held back after a revert) is accepted "
        "again, and those the node knows the address of are dialled at once; sync then "
        "converges on the chain with the most work. " + DEVNET_ONLY,
        admin=True,
    ),
)


# --- /p2p/ and the routes outside the API --------------------------------------------------------


def _bin(size: int | None = None, description: str = "") -> Schema:
    what = f"bin, {size} bytes" if size is not None else "bin"
    return binary(f"{what}: {description}" if description else what)


def _map(description: str, fields: dict[str, Schema]) -> Schema:
    """A ``/p2p/`` message: a msgpack map with exactly these fields."""
    return {
        "type": "object",
        "description": description,
        "properties": fields,
        "required": list(fields),
        "additionalProperties": False,
    }


def _array(items: Schema, max_items: int) -> Schema:
    return {"type": "array", "items": items, "maxItems": max_items}


def p2p_routes() -> tuple[Route, ...]:
    """The node-to-node routes (SPEC 3.4, docs/PROTOCOL.md section 9, ``node.p2p.routes``)."""
    kind = {"enum": list(p2p.KINDS)}
    url = string(maxLength=p2p.MAX_URL)
    handshake = _map(
        "Who the sender is and how far its chain goes.",
        {
            "magic": _bin(4, "the network's magic"),
            "genesis": _bin(32, "the genesis block hash, internal order"),
            "version": integer(maximum=m.MAX_UINT32, description="protocol version"),
            "height": integer(maximum=m.MAX_UINT32, description="tip height"),
            "work": _bin(32, "chainwork, big-endian"),
            "url": {**url, "description": "the sender's listening URL"},
            "nonce": _bin(8, "random per node run, to detect connections to itself"),
        },
    )
    nothing = _map("Nothing.", {})
    messages = (
        ("handshake", "Exchange handshakes (also the ping)", handshake, handshake),
        (
            "inv",
            "Announce transactions or blocks",
            _map("Hashes the sender has.", {"kind": kind, "hashes": _array(_bin(32), p2p.MAX_INV)}),
            nothing,
        ),
        (
            "getdata",
            "Ask for transactions or blocks by hash",
            _map("Hashes wanted.", {"kind": kind, "hashes": _array(_bin(32), p2p.MAX_GETDATA)}),
            _map(
                "The canonical bytes of each object the receiver has, each hash once, at most "
                f"{MAX_GETDATA_ANSWER_BYTES // 2**20} MiB; nothing to a sender that has not "
                "handshaken.",
                {"items": _array(_bin(description="a serialized object"), p2p.MAX_GETDATA)},
            ),
        ),
        (
            "getheaders",
            "Ask for headers after a block locator",
            _map(
                "The sender's block locator.",
                {
                    "locator": _array(_bin(32), p2p.MAX_LOCATOR),
                    "stop": _bin(32, "zeros: no stop"),
                },
            ),
            _map(
                "Headers after the first locator hash on the receiver's active chain.",
                {"headers": _array(_bin(80), p2p.MAX_HEADERS)},
            ),
        ),
        (
            "addr",
            "Exchange peer addresses",
            _map("URLs the sender knows.", {"urls": _array(url, p2p.MAX_ADDRS)}),
            _map("URLs the receiver knows.", {"urls": _array(string(), p2p.MAX_ADDRS)}),
        ),
        (
            "mempool",
            "Ask for the txids in the mempool",
            nothing,
            _map(
                f"Up to {p2p.MAX_MEMPOOL_TXIDS:,} txids.",
                {"txids": _array(_bin(32), p2p.MAX_MEMPOOL_TXIDS)},
            ),
        ),
    )
    peer_header = Param(
        "X-Tally-Peer",
        "header",
        string(pattern="^https?://", maxLength=p2p.MAX_URL),
        "The sender's listening URL, believed when its host is the request's address. Bans, "
        "scores and rates are per IP address; under `--whitelist` per this URL "
        "(`ip:<remote address>` without it).",
    )
    return tuple(
        Route(
            "post",
            f"/p2p/{name}",
            f"p2p{name.capitalize()}",
            "p2p",
            summary,
            Content(MSGPACK, answer),
            params=(peer_header,),
            body={MSGPACK: Content(MSGPACK, request)},
            errors=(400, 403, 413, 429),
            description=f"Body at most {BODY_LIMITS[name]:,} bytes. A malformed message (400: "
            "`bad-message`, `too-many-items`, and for a handshake `wrong-network`, "
            "`wrong-genesis`, `old-version`, `self-connection`) or an oversized body costs the "
            "sender misbehaviour points; at 100 it is banned for 24 hours.",
        )
        for name, summary, request, answer in messages
    )


OUTSIDE: tuple[Route, ...] = (
    Route(
        "get",
        "/metrics",
        "getMetrics",
        "outside",
        "Prometheus metrics",
        Content(TEXT, string(description="Prometheus text exposition format")),
    ),
    Route(
        "get",
        "/",
        "getExplorer",
        "outside",
        "The explorer page (SPEC 5)",
        Content(HTML, string(description="the page")),
    ),
    Route(
        "get",
        "/static/{filename}",
        "getExplorerFile",
        "outside",
        "The explorer's static files (HTML, CSS, JavaScript)",
        Content("*/*", {}),
        params=(
            Param(
                "filename",
                "path",
                string(pattern=f"^{STATIC_NAME.pattern}$"),
                "A file of the explorer, e.g. `index.html` (404 if there is none).",
            ),
        ),
        errors=(404,),
    ),
)


# --- the generator -------------------------------------------------------------------------------

ERRORS = {
    400: (
        "BadRequest",
        "Bad input (`bad-request`, `bad-address`, `bad-xpub`, `not-allowed`) or a refused "
        "transaction or block (its reject code).",
    ),
    401: ("Unauthorized", "Missing or wrong `Authorization: Bearer <token>` (`unauthorized`)."),
    403: (
        "Forbidden",
        "A `Host` header that does not name this node (DNS rebinding), or a POST whose `Origin` "
        "is not the node's own (cross-site): `forbidden`, on every route, before anything "
        "else; a `/p2p/` request from a banned peer (`banned`) or from a peer this node is "
        "partitioned from (`partitioned`); or a devnet toolkit route on a network other than "
        "regtest (`not-allowed`).",
    ),
    404: ("NotFound", "No such block, transaction, height or page (`not-found`)."),
    405: (
        "MethodNotAllowed",
        "The route does not serve this method (`method-not-allowed`); `Allow` lists those it "
        "serves.",
    ),
    413: (
        "PayloadTooLarge",
        f"The body is larger than {MAX_BODY // 2**20} MiB, or than a `/p2p/` route's limit "
        "(`payload-too-large`).",
    ),
    414: (
        "UriTooLong",
        f"The URL (path and query, as sent) is longer than {MAX_URL_BYTES:,} bytes "
        "(`uri-too-long`), on every route, before anything else.",
    ),
    415: (
        "UnsupportedMediaType",
        "A body that is not `application/json` (`charset=utf-8` allowed) or "
        "`application/msgpack`; on `/p2p/`, not `application/msgpack` (`unsupported-media-type`).",
    ),
    429: (
        "TooManyRequests",
        f"A `/p2p/` peer over its rate: {RATE_PER_SECOND:g} requests a second, bursts of "
        f"{RATE_BURST:,g} (`too-many-requests`).",
    ),
    431: (
        "HeaderFieldsTooLarge",
        f"A header field (name and value) is longer than {MAX_HEADER_BYTES:,} bytes "
        "(`request-header-fields-too-large`); the node closes the connection.",
    ),
}

DESCRIPTION = f"""\
The HTTP API of a Tally node (SPEC 3.5). Amounts are integers in base units; hashes and txids \
are display hex (64 characters, byte-reversed as Bitcoin shows them); times are Unix seconds.

Errors are `{{"error": {{"code", "message"}}}}` with status 400, 401, 403, 404, 405, 413, 414, \
415, 431 (and 429 on `/p2p/`); `code` is the reject code of a refused transaction or block, \
otherwise the HTTP reason as a slug. Bad input never produces a 500. A method a route does not \
serve is a 405 whose `Allow` header lists those it does. Every route answers 403 `forbidden` to \
a `Host` that does not name the node (its bind address and port; `localhost`, `127.0.0.1`, \
`[::1]` when bound to loopback; names given with `--allow-host`) and to a POST from a foreign \
`Origin`; a body must be `application/json` or `application/msgpack` (415 otherwise).

Admin routes need `Authorization: Bearer <token>`, the token written at start-up to \
`<datadir>/.cookie` as `__cookie__:<token>`. A URL (path and query) is at most \
{MAX_URL_BYTES:,} bytes (414 `uri-too-long` beyond, before any other check) and a header field \
at most {MAX_HEADER_BYTES:,} bytes (431). Request bodies are at most {MAX_BODY // 2**20} MiB; \
`POST /txs` takes at most {MAX_BATCH:,} transactions; paged lists hold {TXS_PAGE} items.

The `/p2p/` routes are for other nodes: msgpack maps both ways (docs/PROTOCOL.md section 9)."""

TAGS = [
    ("chain", "The best chain and lookups."),
    ("blocks", "Blocks."),
    ("transactions", "Transactions, and submitting them."),
    ("addresses", "Addresses and accounts: totals, history, unspent outputs."),
    ("mempool", "Unconfirmed transactions and fees."),
    ("node", "The node itself."),
    ("events", "The event stream (SPEC 3.6)."),
    ("admin", "Operator commands; need the cookie's token."),
    ("outside", "Routes outside `/api/v1/`."),
    ("p2p", "Node-to-node routes (SPEC 3.4): msgpack in, msgpack out."),
]


def all_routes() -> tuple[Route, ...]:
    return (*ROUTES, *SNAPSHOT_ROUTES, *p2p_routes(), *OUTSIDE)


def _types(routes: tuple[Route, ...]) -> list[Any]:
    """Every model type the routes name (answers and bodies), in a stable order."""
    found: list[Any] = []
    for route in routes:
        for item in (route.answer, *(route.body or {}).values()):
            if not isinstance(item, Content) and item not in found:
                found.append(item)
    return found


SECP256K1_G = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
"""secp256k1's generator point, compressed: a valid public key for an example account key."""


def examples_for(params: NetworkParams | None) -> dict[str, str]:
    """Example values of the parameters no pattern pins down, for ``params``' network: an
    address (of the all-zero key hash) and an account key (of the curve's generator point)."""
    if params is None:
        return {}
    account = ExtendedPublicKey(3, bytes(4), 0x80000000, bytes(32), SECP256K1_G)
    return {
        "address": encode_address(bytes(PUBKEY_HASH_SIZE), params),
        "xpub": encode_xpub(account, params),
    }


def _operation(
    route: Route, types: list[Any], schemas: tuple[Schema, ...], examples: dict[str, str]
) -> Schema:
    def content(item: Answer, media_type: str = JSON) -> Schema:
        if isinstance(item, Content):
            return {item.media_type: {"schema": item.schema}}
        return {media_type: {"schema": schemas[types.index(item)]}}

    op: Schema = {"operationId": route.operation_id, "tags": [route.tag], "summary": route.summary}
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = [p.document(examples) for p in route.params]
    if route.body is not None:
        media: Schema = {}
        for media_type, item in route.body.items():
            media.update(content(item, media_type))
        op["requestBody"] = {
            "required": True,
            "description": f"{route.body_description}: "
            + " or ".join(f"`{t}`" for t in media)
            + f" (415 for any other content type, or none); at most {MAX_BODY // 2**20} MiB "
            "(413 beyond).",
            "content": media,
        }
    if route.admin:
        op["security"] = [{"adminToken": []}]
    op.update(route.extra)
    guards = (403, 414, 415, 431) if route.body is not None else (403, 414, 431)
    statuses = sorted({*route.errors, *guards, 405})
    op["responses"] = {
        "200": {
            "description": "OK.",
            "content": {
                **content(route.answer),
                **{s.media_type: {"schema": s.schema} for s in route.streams},
            },
        },
        **{str(s): {"$ref": f"#/components/responses/{ERRORS[s][0]}"} for s in statuses},
    }
    return op


def _refer(node: Any, named: dict[str, Schema]) -> Any:
    """``node`` with every schema equal to a named one replaced by a reference to it."""
    if isinstance(node, dict):
        for name, schema in named.items():
            if node == schema:
                return {"$ref": m.REF_TEMPLATE.format(name=name)}
        return {key: _refer(value, named) for key, value in node.items()}
    if isinstance(node, list):
        return [_refer(item, named) for item in node]
    return node


def openapi_document(params: NetworkParams | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a new dict on each call); with ``params``, the examples
    of its address and account key parameters are of that network."""
    examples = examples_for(params)
    routes = all_routes()
    types = _types(routes)
    schemas, components = msgspec.json.schema_components(
        [*types, *m.VARIANTS, *m.STREAM_MODELS, *m.NAMED.values()], ref_template=m.REF_TEMPLATE
    )
    skip = len(types) + len(m.VARIANTS) + len(m.STREAM_MODELS)
    named = dict(zip(m.NAMED, schemas[skip:], strict=True))
    schemas = tuple(_refer(s, named) for s in schemas[: len(types)])
    components = {name: _refer(s, named) for name, s in components.items()} | named
    paths: dict[str, Schema] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method] = _operation(route, types, schemas, examples)
    error_ref = {"$ref": m.REF_TEMPLATE.format(name="Error")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tally node API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": "/", "description": "the node itself"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {
                name: {"description": text, "content": {JSON: {"schema": error_ref}}}
                for name, text in ERRORS.values()
            },
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in `<datadir>/.cookie` (after `__cookie__:`), "
                    "new at every start.",
                }
            },
        },
    }


@cache
def openapi_json(params: NetworkParams) -> bytes:
    """The document a node of ``params``' network serves, encoded once (it depends only on the
    code and the network)."""
    return msgspec.json.encode(openapi_document(params))
