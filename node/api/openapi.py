"""The OpenAPI 3.1 description of the HTTP API (SPEC 3.5), served at ``/api/v1/openapi.json``.

``openapi_document()`` returns the whole document as a plain dict: every route ``node.api.app``
registers (the public ``/api/v1/`` routes, the admin routes behind a bearer token, the
node-to-node ``/p2p/`` routes of ``node.p2p.routes``, ``/metrics``, ``/`` and the explorer's
``/static/`` files), the exact JSON shapes ``node.api.views`` builds, and the error answers.
``tests/functional/test_openapi.py`` checks that the document and the app agree and fuzzes a
running node against it.

Conventions the schemas encode:

- amounts are integers in base units; hashes and txids are display hex (64 lowercase hex
  characters, byte-reversed as Bitcoin shows them); times are Unix seconds;
- every object the node answers lists all its keys as ``required`` and allows no others, and a
  key that can be ``null`` says so;
- every error is ``{"error": {"code", "message"}}`` (``components/responses``), where ``code`` is
  the reject code of a refused transaction or block, or the HTTP reason as a slug;
- ``/p2p/`` bodies are msgpack maps (docs/PROTOCOL.md section 9); their schemas describe the
  decoded map, a ``format: binary`` string standing for a msgpack ``bin``.

The document is built from small helpers (``obj``, ``array``, ``ok``, ``operation``...) so that
each route reads as one short entry.
"""

from __future__ import annotations

from typing import Any

from node.api.guards import MAX_HEADER_BYTES, MAX_URL_BYTES
from node.api.views import MEMPOOL_RECENT, MEMPOOL_TXIDS_PAGE, TXS_PAGE, UTXO_PAGE

Schema = dict[str, Any]

API = "/api/v1"
JSON = "application/json"
MSGPACK = "application/msgpack"
TEXT = "text/plain"
HTML = "text/html"
SVG = "image/svg+xml"

MAX_BATCH = 1_000
MAX_GENERATE = 10_000
BLOCKS_PAGE = 10
FEE_TARGETS = ("1", "3", "6", "12", "25")

HASH_PATTERN = "^[0-9a-fA-F]{64}$"
"""What the node accepts where a hash or txid is asked for."""
OUTPOINT_PATTERN = "^[0-9a-fA-F]{64}:[0-9]{1,10}$"
"""An output as ``TXID:N``."""
DISPLAY_HASH_PATTERN = "^[0-9a-f]{64}$"
"""What the node answers: lowercase display hex."""
BASE58_PATTERN = "^[1-9A-HJ-NP-Za-km-z]+$"
HEX_PATTERN = "^([0-9a-fA-F]{2})*$"
CODE_PATTERN = "^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_UINT32 = 2**32 - 1
MAX_HEIGHT = 2**31


# --- schema helpers ------------------------------------------------------------------------------


def ref(name: str) -> Schema:
    """A reference to ``components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    return {"anyOf": [schema, {"type": "null"}]}


def integer(description: str = "", minimum: int | None = 0, maximum: int | None = None) -> Schema:
    """An integer, at least 0 unless told otherwise."""
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if description:
        schema["description"] = description
    return schema


def string(description: str = "", **keywords: Any) -> Schema:
    schema: Schema = {"type": "string", **keywords}
    if description:
        schema["description"] = description
    return schema


def boolean(description: str = "") -> Schema:
    schema: Schema = {"type": "boolean"}
    if description:
        schema["description"] = description
    return schema


def const(value: Any) -> Schema:
    return {"const": value}


def amount(description: str = "") -> Schema:
    return integer(description or "base units", 0, 2**63 - 1)


def obj(description: str, properties: dict[str, Schema]) -> Schema:
    """An object the node answers: exactly these keys, all of them present."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def array(items: Schema, description: str = "", max_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    if description:
        schema["description"] = description
    return schema


def binary(description: str) -> Schema:
    return {"type": "string", "format": "binary", "description": description}


# --- operation helpers ---------------------------------------------------------------------------


def ok(description: str, schema: Schema, media_type: str = JSON) -> dict[str, Schema]:
    """The 200 answer."""
    return {"200": {"description": description, "content": {media_type: {"schema": schema}}}}


def errors(*statuses: int) -> dict[str, Schema]:
    """The error answers ``statuses``, as references to ``components/responses``."""
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        413: "PayloadTooLarge",
        414: "UriTooLong",
        415: "UnsupportedMediaType",
        429: "TooManyRequests",
        431: "HeaderFieldsTooLarge",
    }
    return {str(s): {"$ref": f"#/components/responses/{names[s]}"} for s in statuses}


def guarded(responses: dict[str, Schema], has_body: bool) -> dict[str, Schema]:
    """Add what ``node.api.guards`` (and ``node.api.parser_errors``) answer on every route: 403
    for a foreign ``Host`` (or a state-changing request from a foreign ``Origin``), 414 for a
    URL over ``MAX_URL_BYTES``, 431 for a header field over ``MAX_HEADER_BYTES``, and 415 where a
    body is taken."""
    extra = errors(403, 414, 415, 431) if has_body else errors(403, 414, 431)
    return {**responses, **{k: v for k, v in extra.items() if k not in responses}}


def path_param(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def query_param(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    description: str = "",
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    admin: bool = False,
) -> Schema:
    op: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if admin:
        op["security"] = [{"adminToken": []}]
    op["responses"] = guarded(responses, body is not None)
    return op


def json_body(schema: Schema, description: str) -> Schema:
    return {"required": True, "description": description, "content": {JSON: {"schema": schema}}}


def raw_body(what: str, msgpack_schema: Schema, json_schema: Schema) -> Schema:
    """A body that is msgpack bytes or the JSON form of the same thing."""
    return {
        "required": True,
        "description": (
            f"{what}: an `application/msgpack` body, or `application/json` (415 for any other "
            "content type, or none). At most 4 MB (413 beyond)."
        ),
        "content": {MSGPACK: {"schema": msgpack_schema}, JSON: {"schema": json_schema}},
    }


# --- parameters ----------------------------------------------------------------------------------

HASH_PARAM = path_param(
    "hash", string(pattern=HASH_PATTERN), "A block hash: 64 hex characters, display order."
)
TXID_PARAM = path_param(
    "txid", string(pattern=HASH_PATTERN), "A txid: 64 hex characters, display order."
)
ADDRESS_PARAM = path_param(
    "address",
    string(pattern=BASE58_PATTERN, maxLength=200),
    "A Base58Check address of the node's network (400 `bad-address` otherwise).",
)
XPUB_PARAM = path_param(
    "xpub",
    string(pattern=BASE58_PATTERN, maxLength=120),
    "An account-level BIP32 extended public key in this network's version bytes "
    "(`Rpub...` on regtest; 400 `bad-xpub` otherwise, with the reason).",
)
HEIGHT_PARAM = path_param(
    "height", integer(maximum=MAX_HEIGHT), "A height in the best chain (404 above the tip)."
)


# --- component schemas ---------------------------------------------------------------------------


def component_schemas() -> dict[str, Schema]:
    hash_ = ref("Hash")
    height = integer("height in the best chain")
    return {
        "Hash": string(
            "A block hash or txid as display hex (byte-reversed, lowercase).",
            pattern=DISPLAY_HASH_PATTERN,
        ),
        "Address": string("A Base58Check address.", pattern=BASE58_PATTERN),
        "Error": obj(
            "Every error answer.",
            {
                "error": obj(
                    "What went wrong.",
                    {
                        "code": string(
                            "The reject code of a refused transaction or block "
                            "(`bad-encoding`, `txn-already-known`, `high-hash`...), "
                            "`bad-address`, `not-allowed`, or the HTTP reason as a slug "
                            "(`bad-request`, `unauthorized`, `not-found`, `payload-too-large`, "
                            "`uri-too-long`).",
                            pattern=CODE_PATTERN,
                        ),
                        "message": string("A sentence for people."),
                    },
                )
            },
        ),
        "Info": obj(
            "The node at a glance.",
            {
                "network": {"enum": ["main", "test", "regtest"]},
                "height": height,
                "best_hash": hash_,
                "chainwork": string(
                    "Total work of the best chain, zero-padded hex", pattern="^[0-9a-f]{64,}$"
                ),
                "peers": integer("connected peers"),
                "mempool": obj(
                    "Mempool size.", {"count": integer(), "bytes": integer("serialized bytes")}
                ),
                "synced": boolean("no connected peer reports more work"),
                "version": string("The node's version"),
            },
        ),
        "Block": obj(
            "A block summary.",
            {
                "hash": hash_,
                "height": integer(),
                "version": integer(maximum=MAX_UINT32),
                "prev_hash": hash_,
                "next_hash": nullable(
                    {**hash_, "description": "null at the tip and off the best chain"}
                ),
                "merkle_root": hash_,
                "time": integer("Unix seconds", maximum=MAX_UINT32),
                "median_time": integer("median time past, Unix seconds"),
                "bits": integer("compact target", maximum=MAX_UINT32),
                "nonce": integer(maximum=MAX_UINT32),
                "tx_count": integer(minimum=1),
                "size": integer("serialized bytes", minimum=1),
                "total_fees": amount("fees of its transactions, base units"),
                "confirmations": integer("0 off the best chain"),
                "in_best_chain": boolean(),
            },
        ),
        "TxInput": obj(
            "An input and the coin it spends.",
            {
                "txid": ref("Hash"),
                "index": integer(maximum=MAX_UINT32),
                "address": nullable(
                    {**ref("Address"), "description": "null for a coinbase, or when unknown"}
                ),
                "amount": nullable(
                    amount(
                        "of the coin spent; 0 for a coinbase; null when unknown (a transaction"
                        " of a block off the best chain whose inputs this node cannot see)"
                    )
                ),
                "coinbase": boolean(),
            },
        ),
        "TxOutput": obj(
            "An output.",
            {"address": ref("Address"), "amount": amount(), "spent": boolean()},
        ),
        "TxStatus": {
            "description": "Where the transaction is: in a block of the best chain, in the "
            "mempool (then every block field is null), or replaced recently.",
            "oneOf": [
                obj(
                    "Confirmed.",
                    {
                        "confirmed": const(True),
                        "block_hash": hash_,
                        "block_height": integer(),
                        "block_time": integer("Unix seconds"),
                        "confirmations": integer("0 for a block off the best chain"),
                    },
                ),
                obj(
                    "In the mempool.",
                    {
                        "confirmed": const(False),
                        "block_hash": {"type": "null"},
                        "block_height": {"type": "null"},
                        "block_time": {"type": "null"},
                        "confirmations": const(0),
                    },
                ),
                obj(
                    "Replaced recently (RBF, bump-fee): no longer in the mempool; `replaced_by` "
                    "is the txid of the transaction that replaced it directly (if that was "
                    "replaced in turn, ask for its status). Remembered for 24 hours, the newest "
                    "10,000 (10 MB), and not across a restart; after that the txid is a 404.",
                    {"confirmed": const(False), "replaced_by": hash_},
                ),
            ],
        },
        "Transaction": obj(
            "A transaction with the coins it spends and where it is.",
            {
                "txid": hash_,
                "wtxid": hash_,
                "version": integer(maximum=MAX_UINT32),
                "locktime": integer(maximum=MAX_UINT32),
                "size": integer("serialized bytes", minimum=1),
                "fee": nullable(
                    amount("inputs minus outputs; 0 for a coinbase; null when inputs are unknown")
                ),
                "inputs": array(ref("TxInput")),
                "outputs": array(ref("TxOutput")),
                "status": ref("TxStatus"),
            },
        ),
        "MerkleProof": obj(
            "The branch proving a confirmed transaction is in its block: its leaf is the "
            "transaction's wtxid (the header's merkle root is over the wtxids).",
            {
                "block_height": integer(),
                "block_hash": hash_,
                "merkle": array(hash_, "sibling hashes from the leaf up"),
                "pos": integer("the transaction's position in the block"),
            },
        ),
        "Outspend": {
            "description": "What spends one output.",
            "oneOf": [
                obj("Unspent.", {"spent": const(False)}),
                obj(
                    "Spent by input `vin` of `txid`, in a block or in the mempool.",
                    {
                        "spent": const(True),
                        "txid": hash_,
                        "vin": integer(maximum=MAX_UINT32),
                        "confirmed": boolean(),
                    },
                ),
            ],
        },
        "TxidResult": obj("An accepted transaction.", {"txid": hash_}),
        "SubmitBlockResult": obj(
            "What became of a submitted block.",
            {
                "hash": hash_,
                "status": {
                    "enum": ["active", "side", "orphan"],
                    "description": "on the best chain now; stored on another chain; or kept "
                    "until its parent arrives",
                },
                "height": nullable(integer(description="null for an orphan")),
            },
        ),
        "AddressStats": obj(
            "Totals over an address's transactions.",
            {
                "funded_sum": amount("received"),
                "spent_sum": amount("spent"),
                "tx_count": integer(),
            },
        ),
        "AddressSummary": obj(
            "An address's totals and balance.",
            {
                "address": string("as asked"),
                "chain_stats": ref("AddressStats"),
                "mempool_stats": ref("AddressStats"),
                "balance": obj(
                    "Balance in base units.",
                    {
                        "confirmed": amount("spendable now"),
                        "unconfirmed": integer(
                            "mempool change (negative when the mempool spends confirmed coins)",
                            minimum=None,
                        ),
                        "immature": amount("coinbase outputs not yet mature"),
                    },
                ),
            },
        ),
        "Utxo": obj(
            "An unspent output of the address (not spent in the mempool either).",
            {
                "txid": hash_,
                "index": integer(maximum=MAX_UINT32),
                "amount": amount(),
                "height": nullable(integer(description="null while in the mempool")),
                "coinbase": boolean(),
                "confirmations": integer("0 while in the mempool"),
            },
        ),
        "AccountSummary": obj(
            "An account's totals over its addresses within the gap limit.",
            {
                "xpub": string("as asked"),
                "chain_stats": ref("AddressStats"),
                "mempool_stats": ref("AddressStats"),
                "balance": obj(
                    "Balance in base units, summed over the account's addresses.",
                    {
                        "confirmed": amount("spendable now"),
                        "unconfirmed": integer("mempool change", minimum=None),
                        "immature": amount("coinbase outputs not yet mature"),
                    },
                ),
                "addresses": array(
                    obj(
                        "A used address of the account.",
                        {
                            "address": string(),
                            "path": string("chain/index below the account key"),
                            "tx_count": integer("transactions touching it, mempool included"),
                            "balance": integer("confirmed + unconfirmed", minimum=None),
                        },
                    )
                ),
                "next_receive_index": integer("the first unused receive index after the used"),
                "next_change_index": integer("the first unused change index after the used"),
                "gap_limit": integer(),
            },
        ),
        "AccountUtxo": obj(
            "An unspent output of one of the account's addresses.",
            {
                "txid": hash_,
                "index": integer(maximum=MAX_UINT32),
                "amount": amount(),
                "height": nullable(integer(description="null while in the mempool")),
                "coinbase": boolean(),
                "confirmations": integer("0 while in the mempool"),
                "address": string(),
                "path": string("chain/index below the account key"),
            },
        ),
        "MempoolSummary": obj(
            "The mempool.",
            {
                "count": integer(),
                "bytes": integer(),
                "total_fee": amount(),
                "fee_histogram": array(
                    {**array(integer(), max_items=2), "minItems": 2},
                    "[rate, bytes] pairs, highest rate first: the fee rate bucket in base units "
                    "per byte (a power of two, or 0) and the bytes of transactions in it",
                ),
            },
        ),
        "MempoolRecent": obj(
            "A recently accepted transaction.",
            {
                "txid": hash_,
                "fee": amount(),
                "size": integer(minimum=1),
                "value": amount("total of its outputs"),
            },
        ),
        "FeeEstimates": {
            "type": "object",
            "description": "Base units per byte to confirm within 1, 3, 6, 12 or 25 blocks.",
            "properties": {t: integer(minimum=1) for t in FEE_TARGETS},
            "required": list(FEE_TARGETS),
            "additionalProperties": False,
        },
        "SearchResult": {
            "description": "What `q` is and where it leads.",
            "oneOf": [
                obj(
                    "A block, by height or hash.",
                    {"type": const("block"), "id": hash_, "height": integer()},
                ),
                obj(
                    "A transaction, in a block or in the mempool.",
                    {"type": const("tx"), "id": hash_},
                ),
                obj(
                    "An address of this network.", {"type": const("address"), "id": ref("Address")}
                ),
                obj(
                    "An account's extended public key of this network (Rpub... on regtest).",
                    {"type": const("xpub"), "id": string()},
                ),
            ],
        },
        "UtxoSetInfo": obj(
            "The UTXO set (SPEC 3.1).",
            {
                "height": integer(),
                "best_hash": hash_,
                "count": integer("unspent outputs"),
                "total_amount": amount(),
                "hash": string(
                    "commitment to the whole set (hex, not reversed)", pattern="^[0-9a-f]{64}$"
                ),
            },
        ),
        "Peers": obj(
            "Connected and banned peers.",
            {
                "connected": array(
                    obj(
                        "A peer that completed the handshake.",
                        {
                            "url": string("its listening URL"),
                            "direction": {"enum": ["outbound", "inbound"]},
                            "height": integer("its tip height at the last handshake"),
                            "connected_at": integer("Unix seconds"),
                            "score": integer("misbehaviour points (banned at 100)"),
                        },
                    )
                ),
                "banned": array(
                    obj(
                        "A banned peer.",
                        {
                            "peer": string("its URL, or `ip:<address>` when it sent none"),
                            "until": integer("end of the ban, Unix seconds"),
                        },
                    )
                ),
            },
        ),
        "RawObject": {
            "type": "object",
            "description": "A serialized transaction or block as hex (other keys are ignored).",
            "properties": {"raw": string("the msgpack serialization, hex", pattern=HEX_PATTERN)},
            "required": ["raw"],
        },
    }


def component_responses() -> dict[str, Schema]:
    def error(description: str) -> Schema:
        return {"description": description, "content": {JSON: {"schema": ref("Error")}}}

    return {
        "BadRequest": error(
            "Bad input (`bad-request`, `bad-address`, `not-allowed`) or a refused transaction "
            "or block (its reject code)."
        ),
        "Unauthorized": error("Missing or wrong `Authorization: Bearer <token>` (`unauthorized`)."),
        "NotFound": error("No such block, transaction, height or page (`not-found`)."),
        "PayloadTooLarge": error(
            "The body is larger than 4 MB, or than a `/p2p/` route's limit (`payload-too-large`)."
        ),
        "Forbidden": error(
            "A `Host` header that does not name this node (DNS rebinding), or a POST whose "
            "`Origin` is not the node's own (cross-site): `forbidden`, on every route, before "
            "anything else; or a `/p2p/` request from a banned peer (`banned`)."
        ),
        "UnsupportedMediaType": error(
            "A body that is not `application/json` (`charset=utf-8` allowed) or "
            "`application/msgpack`; on `/p2p/`, not `application/msgpack` "
            "(`unsupported-media-type`)."
        ),
        "UriTooLong": error(
            f"The URL (path and query, as sent) is longer than {MAX_URL_BYTES:,} bytes "
            "(`uri-too-long`), on every route, before anything else."
        ),
        "HeaderFieldsTooLarge": error(
            f"A header field (name and value) is longer than {MAX_HEADER_BYTES:,} bytes "
            "(`request-header-fields-too-large`); the node closes the connection."
        ),
        "TooManyRequests": error(
            "A `/p2p/` peer over its rate: 200 requests a second, bursts of 2,000 "
            "(`too-many-requests`)."
        ),
    }


# --- paths ---------------------------------------------------------------------------------------


def chain_paths() -> dict[str, Schema]:
    hash_text = string("display hex", pattern=DISPLAY_HASH_PATTERN)
    return {
        f"{API}/info": {
            "get": operation(
                "getInfo", "chain", "The node at a glance", ok("The node.", ref("Info"))
            )
        },
        f"{API}/blocks/tip/height": {
            "get": operation(
                "getTipHeight",
                "chain",
                "The height of the best chain's tip",
                ok("The height, as text.", string(pattern="^[0-9]+$"), TEXT),
            )
        },
        f"{API}/blocks/tip/hash": {
            "get": operation(
                "getTipHash",
                "chain",
                "The hash of the best chain's tip",
                ok("The hash, as text.", hash_text, TEXT),
            )
        },
        f"{API}/blocks": {
            "get": operation(
                "getBlocks",
                "blocks",
                f"The {BLOCKS_PAGE} newest block summaries at or below a height",
                {
                    **ok(
                        "Newest first.",
                        array(ref("Block"), max_items=BLOCKS_PAGE),
                    ),
                    **errors(400),
                },
                parameters=[
                    query_param(
                        "start_height",
                        integer(maximum=MAX_HEIGHT),
                        "The highest block to list (default: the tip).",
                    )
                ],
            )
        },
        API + "/block/{hash}": {
            "get": operation(
                "getBlock",
                "blocks",
                "A block summary",
                {**ok("The block.", ref("Block")), **errors(400, 404)},
                parameters=[HASH_PARAM],
            )
        },
        API + "/block/{hash}/txids": {
            "get": operation(
                "getBlockTxids",
                "blocks",
                "The txids of a block, in order",
                {**ok("Every txid.", array(ref("Hash"))), **errors(400, 404)},
                parameters=[HASH_PARAM],
            )
        },
        API + "/block/{hash}/txs": {
            "get": operation(
                "getBlockTxs",
                "blocks",
                f"The transactions of a block, {TXS_PAGE} a page",
                {
                    **ok("One page.", array(ref("Transaction"), max_items=TXS_PAGE)),
                    **errors(400, 404),
                },
                description=(
                    f"`start_index` is a multiple of {TXS_PAGE} below the block's transaction "
                    "count (404 otherwise)."
                ),
                parameters=[
                    HASH_PARAM,
                    query_param(
                        "start_index",
                        {**integer(maximum=10**6), "multipleOf": TXS_PAGE, "default": 0},
                        "Position of the first transaction of the page.",
                    ),
                ],
            )
        },
        API + "/block/{hash}/raw": {
            "get": operation(
                "getBlockRaw",
                "blocks",
                "A block's serialization",
                {
                    **ok("The msgpack bytes.", binary("the block, serialized"), MSGPACK),
                    **errors(400, 404),
                },
                parameters=[HASH_PARAM],
            )
        },
        API + "/block-height/{height}": {
            "get": operation(
                "getBlockHashAtHeight",
                "blocks",
                "The hash of the block at a height of the best chain",
                {**ok("The hash, as text.", hash_text, TEXT), **errors(400, 404)},
                parameters=[HEIGHT_PARAM],
            )
        },
        f"{API}/block": {
            "post": operation(
                "submitBlock",
                "blocks",
                "Submit a serialized block (external miners, tests)",
                {**ok("Stored.", ref("SubmitBlockResult")), **errors(400, 413)},
                description="A refused block is a 400 whose code is the reject code.",
                body=raw_body("The block", binary("the serialized block"), ref("RawObject")),
            )
        },
    }


def tx_paths() -> dict[str, Schema]:
    def tx_get(operation_id: str, summary: str, answer: dict[str, Schema]) -> Schema:
        return {
            "get": operation(
                operation_id,
                "transactions",
                summary,
                {**answer, **errors(400, 404)},
                parameters=[TXID_PARAM],
            )
        }

    return {
        API + "/tx/{txid}": tx_get(
            "getTx",
            "A transaction, confirmed, in the mempool or replaced recently",
            ok("The transaction.", ref("Transaction")),
        ),
        API + "/tx/{txid}/status": tx_get(
            "getTxStatus", "Where a transaction is", ok("Its status.", ref("TxStatus"))
        ),
        API + "/tx/{txid}/raw": tx_get(
            "getTxRaw",
            "A transaction's serialization",
            ok("The msgpack bytes.", binary("the transaction, serialized"), MSGPACK),
        ),
        API + "/tx/{txid}/merkle-proof": tx_get(
            "getTxMerkleProof",
            "The Merkle branch of a confirmed transaction's wtxid (404 while in the mempool)",
            ok("The proof.", ref("MerkleProof")),
        ),
        API + "/tx/{txid}/outspends": tx_get(
            "getTxOutspends",
            "What spends each output of a transaction",
            ok("One entry per output, in order.", array(ref("Outspend"))),
        ),
        f"{API}/tx": {
            "post": operation(
                "submitTx",
                "transactions",
                "Submit a serialized transaction to the mempool",
                {**ok("Accepted.", ref("TxidResult")), **errors(400, 413)},
                description="A refused transaction is a 400 whose code is the reject code.",
                body=raw_body(
                    "The transaction", binary("the serialized transaction"), ref("RawObject")
                ),
            )
        },
        f"{API}/txs": {
            "post": operation(
                "submitTxs",
                "transactions",
                f"Submit up to {MAX_BATCH:,} transactions at once",
                {
                    **ok(
                        "One answer per transaction, in order.",
                        array(
                            {"oneOf": [ref("TxidResult"), ref("Error")]},
                            max_items=MAX_BATCH,
                        ),
                    ),
                    **errors(400, 413),
                },
                description=(
                    "Each transaction is accepted or refused on its own: a refusal is an "
                    "`{error}` item in the 200 answer. More than 1,000 is a 400."
                ),
                body=raw_body(
                    "The transactions",
                    array(binary("a serialized transaction"), "a msgpack array of bin"),
                    array(ref("RawObject")),
                ),
            )
        },
    }


def address_paths() -> dict[str, Schema]:
    return {
        API + "/address/{address}": {
            "get": operation(
                "getAddress",
                "addresses",
                "An address's totals and balance",
                {**ok("The summary.", ref("AddressSummary")), **errors(400)},
                parameters=[ADDRESS_PARAM],
            )
        },
        API + "/address/{address}/txs": {
            "get": operation(
                "getAddressTxs",
                "addresses",
                f"An address's transactions, newest first, {TXS_PAGE} a page",
                {
                    **ok(
                        "Unconfirmed first, then confirmed.",
                        array(ref("Transaction"), max_items=TXS_PAGE),
                    ),
                    **errors(400, 404),
                },
                description="Pass the last txid of a page as `after_txid` to get the next.",
                parameters=[
                    ADDRESS_PARAM,
                    query_param(
                        "after_txid",
                        string(pattern=HASH_PATTERN),
                        "The cursor: the last txid of the previous page (404 if unknown).",
                    ),
                ],
            )
        },
        API + "/address/{address}/qr.svg": {
            "get": operation(
                "getAddressQr",
                "addresses",
                "The QR code of the address's payment URI (tally:ADDRESS), as SVG",
                {**ok("The SVG image.", string("an SVG document"), SVG), **errors(400)},
                parameters=[ADDRESS_PARAM],
            )
        },
        API + "/address/{address}/utxo": {
            "get": operation(
                "getAddressUtxos",
                "addresses",
                f"An address's unspent outputs, the mempool's included, {UTXO_PAGE} a page",
                {
                    **ok(
                        "Confirmed first, in (txid, index) order; then unconfirmed ones.",
                        array(ref("Utxo"), max_items=UTXO_PAGE),
                    ),
                    **errors(400),
                },
                description="Pass the last output of a page as `after=TXID:N` for the next; "
                "an empty page is the end.",
                parameters=[
                    ADDRESS_PARAM,
                    query_param(
                        "after",
                        string(pattern=OUTPOINT_PATTERN),
                        "The cursor: the last output of the previous page, as TXID:N.",
                    ),
                ],
            )
        },
    }


def xpub_paths() -> dict[str, Schema]:
    return {
        API + "/xpub/{xpub}": {
            "get": operation(
                "getXpub",
                "addresses",
                "An account's totals, balance and used addresses (gap limit 20)",
                {**ok("The summary.", ref("AccountSummary")), **errors(400)},
                parameters=[XPUB_PARAM],
            )
        },
        API + "/xpub/{xpub}/txs": {
            "get": operation(
                "getXpubTxs",
                "addresses",
                f"An account's transactions, newest first, {TXS_PAGE} a page",
                {
                    **ok(
                        "Unconfirmed first, then confirmed; each transaction once.",
                        array(ref("Transaction"), max_items=TXS_PAGE),
                    ),
                    **errors(400, 404),
                },
                description="Pass the last txid of a page as `after_txid` to get the next.",
                parameters=[
                    XPUB_PARAM,
                    query_param(
                        "after_txid",
                        string(pattern=HASH_PATTERN),
                        "The cursor: the last txid of the previous page (404 if not the account's)",
                    ),
                ],
            )
        },
        API + "/xpub/{xpub}/utxo": {
            "get": operation(
                "getXpubUtxos",
                "addresses",
                f"An account's unspent outputs with their paths, {UTXO_PAGE} a page",
                {
                    **ok(
                        "Confirmed first, in (txid, index) order; then unconfirmed ones.",
                        array(ref("AccountUtxo"), max_items=UTXO_PAGE),
                    ),
                    **errors(400),
                },
                description="Pass the last output of a page as `after=TXID:N` for the next.",
                parameters=[
                    XPUB_PARAM,
                    query_param(
                        "after",
                        string(pattern=OUTPOINT_PATTERN),
                        "The cursor: the last output of the previous page, as TXID:N.",
                    ),
                ],
            )
        },
    }


def mempool_paths() -> dict[str, Schema]:
    return {
        f"{API}/mempool": {
            "get": operation(
                "getMempool", "mempool", "The mempool", ok("Its summary.", ref("MempoolSummary"))
            )
        },
        f"{API}/mempool/txids": {
            "get": operation(
                "getMempoolTxids",
                "mempool",
                f"The txids in the mempool, in acceptance order, {MEMPOOL_TXIDS_PAGE} a page",
                {
                    **ok("The txids.", array(ref("Hash"), max_items=MEMPOOL_TXIDS_PAGE)),
                    **errors(400, 404),
                },
                description="Pass the last txid of a page as `after_txid` for the next.",
                parameters=[
                    query_param(
                        "after_txid",
                        string(pattern=HASH_PATTERN),
                        "The cursor: the last txid of the previous page (404 if it left).",
                    )
                ],
            )
        },
        f"{API}/mempool/recent": {
            "get": operation(
                "getMempoolRecent",
                "mempool",
                f"The {MEMPOOL_RECENT} transactions accepted last, newest first",
                ok("The transactions.", array(ref("MempoolRecent"), max_items=MEMPOOL_RECENT)),
            )
        },
        f"{API}/fee-estimates": {
            "get": operation(
                "getFeeEstimates",
                "mempool",
                "Fee rates for confirmation targets",
                ok("Rates by target.", ref("FeeEstimates")),
            )
        },
    }


def node_paths() -> dict[str, Schema]:
    return {
        f"{API}/search": {
            "get": operation(
                "search",
                "chain",
                "What a height, block hash, txid or address is",
                {**ok("Where it leads.", ref("SearchResult")), **errors(400, 404)},
                parameters=[
                    query_param(
                        "q",
                        string(minLength=1, maxLength=200, pattern=r"\S"),
                        "A height, block hash, txid or address (400 if empty or blank).",
                        required=True,
                    )
                ],
            )
        },
        f"{API}/utxo-set-info": {
            "get": operation(
                "getUtxoSetInfo", "chain", "The UTXO set", ok("Its summary.", ref("UtxoSetInfo"))
            )
        },
        f"{API}/peers": {
            "get": operation("getPeers", "node", "The node's peers", ok("Peers.", ref("Peers")))
        },
        f"{API}/openapi.json": {
            "get": operation(
                "getOpenApi",
                "node",
                "This document",
                ok(
                    "The OpenAPI description.",
                    {"type": "object", "required": ["openapi", "info", "paths"]},
                ),
            )
        },
    }


def admin_paths() -> dict[str, Schema]:
    def admin(
        operation_id: str,
        summary: str,
        answer: Schema,
        body: Schema | None,
        description: str,
        also: tuple[int, ...] = (),
    ) -> Schema:
        statuses = (400, 401, 413, *also) if body is not None else (401, *also)
        return {
            "post": operation(
                operation_id,
                "admin",
                summary,
                {**ok("Done.", answer), **errors(*statuses)},
                description=description,
                body=body,
                admin=True,
            )
        }

    block_mark_body = json_body(
        {
            "type": "object",
            "properties": {"hash": string("a block hash, display hex", pattern=HASH_PATTERN)},
            "required": ["hash"],
        },
        "The block.",
    )
    block_mark_answer = obj(
        "The block, and the active chain's tip afterwards.",
        {
            "hash": ref("Hash"),
            "best_hash": ref("Hash"),
            "height": integer("the tip's height"),
        },
    )
    return {
        f"{API}/admin/generate": admin(
            "generate",
            "Mine blocks now (regtest only)",
            obj("The new blocks.", {"hashes": array(ref("Hash"))}),
            json_body(
                {
                    "type": "object",
                    "properties": {
                        "count": integer(minimum=1, maximum=MAX_GENERATE),
                        "address": string("where the coinbases pay"),
                    },
                    "required": ["count", "address"],
                },
                "How many blocks, paying whom.",
            ),
            "400 `not-allowed` on networks other than regtest.",
        ),
        f"{API}/admin/peers": admin(
            "addPeer",
            "Add a peer URL",
            obj(
                "The peer added, and whether the handshake with it succeeded.",
                {"added": string("the URL"), "connected": boolean()},
            ),
            json_body(
                {
                    "type": "object",
                    "properties": {"url": string(pattern="^https?://")},
                    "required": ["url"],
                },
                "The peer's base URL.",
            ),
            "The node dials the URL at once (and keeps it among the addresses to reconnect to).",
        ),
        f"{API}/admin/mining": admin(
            "setMining",
            "Start or stop background mining",
            obj("Whether mining runs now.", {"enabled": boolean()}),
            json_body(
                {
                    "type": "object",
                    "properties": {
                        "enabled": boolean(),
                        "address": string("where the coinbases pay (required to start)"),
                        "block_time": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": 86_400,
                            "description": "target seconds between blocks",
                        },
                    },
                    "required": ["enabled"],
                },
                "On or off; to start, where to pay and how fast.",
            ),
            "Stopping needs only `enabled: false`.",
        ),
        f"{API}/admin/invalidate": admin(
            "invalidateBlock",
            "Mark a block and its descendants invalid",
            block_mark_answer,
            block_mark_body,
            "Core's `invalidateblock`. If the block is on the active chain, the node disconnects "
            "back to its parent and activates the most-work valid chain left. The mark stays "
            "across restarts; the block, resent, is refused with `duplicate`. 404 `not-found` "
            "for a hash the node does not know; 400 `not-allowed` for the genesis block.",
            (404,),
        ),
        f"{API}/admin/reconsider": admin(
            "reconsiderBlock",
            "Clear the invalid marks of a block, its descendants and its ancestors",
            block_mark_answer,
            block_mark_body,
            "Core's `reconsiderblock`. Then the node activates the most-work chain: a block that "
            "does break a rule fails again and is marked again. 404 `not-found` for a hash the "
            "node does not know.",
            (404,),
        ),
        f"{API}/admin/stop": admin(
            "stop",
            "Shut the node down",
            obj("The node is stopping.", {"stopping": const(True)}),
            None,
            "Answers, then shuts down cleanly (as SIGTERM does).",
        ),
    }


def bin_(size: int | None = None, description: str = "") -> Schema:
    """A msgpack ``bin`` in a ``/p2p/`` message."""
    what = f"bin, {size} bytes" if size is not None else "bin"
    return binary(f"{what}: {description}" if description else what)


def msgpack_map(description: str, fields: dict[str, Schema]) -> Schema:
    """A ``/p2p/`` message: a msgpack map with exactly these fields."""
    return obj(description, fields)


def p2p_paths() -> dict[str, Schema]:
    """The node-to-node routes (SPEC 3.4, docs/PROTOCOL.md section 9, ``node.p2p.routes``)."""
    hashes = {"kind": {"enum": ["tx", "block"]}}
    handshake = msgpack_map(
        "Who the sender is and how far its chain goes.",
        {
            "magic": bin_(4, "the network's magic"),
            "genesis": bin_(32, "the genesis block hash, internal order"),
            "version": integer("protocol version (1)", maximum=MAX_UINT32),
            "height": integer("tip height", maximum=MAX_UINT32),
            "work": bin_(32, "chainwork, big-endian"),
            "url": string("the sender's listening URL", maxLength=200),
            "nonce": bin_(8, "random per node run, to detect connections to itself"),
        },
    )
    routes: list[tuple[str, str, int, Schema, Schema]] = [
        ("handshake", "Exchange handshakes (also the 10-second ping)", 1_024, handshake, handshake),
        (
            "inv",
            "Announce transactions or blocks",
            64 * 1_024,
            msgpack_map(
                "Hashes the sender has.",
                {**hashes, "hashes": array(bin_(32), max_items=1_000)},
            ),
            msgpack_map("Nothing.", {}),
        ),
        (
            "getdata",
            "Ask for transactions or blocks by hash",
            32 * 1_024,
            msgpack_map("Hashes wanted.", {**hashes, "hashes": array(bin_(32), max_items=500)}),
            msgpack_map(
                "The canonical bytes of each object the receiver has, each hash once, at most "
                "16 MiB; nothing to a sender that has not handshaken.",
                {"items": array(bin_(description="a serialized object"), max_items=500)},
            ),
        ),
        (
            "getheaders",
            "Ask for headers after a block locator",
            4 * 1_024,
            msgpack_map(
                "The sender's block locator.",
                {"locator": array(bin_(32), max_items=64), "stop": bin_(32, "zeros: no stop")},
            ),
            msgpack_map(
                "Headers after the first locator hash on the receiver's active chain.",
                {"headers": array(bin_(80), max_items=2_000)},
            ),
        ),
        (
            "addr",
            "Exchange peer addresses",
            32 * 1_024,
            msgpack_map("URLs the sender knows.", {"urls": array(string(maxLength=200), "", 100)}),
            msgpack_map("URLs the receiver knows.", {"urls": array(string(), "", 100)}),
        ),
        (
            "mempool",
            "Ask for the txids in the mempool",
            64,
            msgpack_map("Nothing.", {}),
            msgpack_map("Up to 100,000 txids.", {"txids": array(bin_(32), max_items=100_000)}),
        ),
    ]
    peer_header = {
        "name": "X-Tally-Peer",
        "in": "header",
        "required": False,
        "schema": string(pattern="^https?://", maxLength=200),
        "description": "The sender's listening URL, believed when its host is the request's "
        "address. Bans, scores and rates are per IP address; under `--whitelist` per this URL "
        "(`ip:<remote address>` without it).",
    }
    return {
        f"/p2p/{name}": {
            "post": operation(
                f"p2p{name.capitalize()}",
                "p2p",
                summary,
                {**ok("The answer, msgpack.", answer, MSGPACK), **errors(400, 403, 413, 429)},
                description=(
                    f"Body at most {limit:,} bytes. A malformed message (400: `bad-message`, "
                    "`too-many-items`, and for a handshake `wrong-network`, `wrong-genesis`, "
                    "`old-version`, `self-connection`) or an oversized body costs the sender 20 "
                    "misbehaviour points; at 100 it is banned for 24 hours."
                ),
                parameters=[peer_header],
                body={"required": True, "content": {MSGPACK: {"schema": request}}},
            )
        }
        for name, summary, limit, request, answer in routes
    }


def outside_paths() -> dict[str, Schema]:
    return {
        "/metrics": {
            "get": operation(
                "getMetrics",
                "outside",
                "Prometheus metrics",
                ok(
                    "Prometheus text exposition format.",
                    string("height, peers, mempool, accepted/rejected, latency histograms"),
                    TEXT,
                ),
            )
        },
        "/": {
            "get": operation(
                "getExplorer",
                "outside",
                "The explorer page (SPEC 5)",
                ok("HTML.", string("the page"), HTML),
            )
        },
        "/static/{filename}": {
            "get": operation(
                "getExplorerFile",
                "outside",
                "The explorer's static files (HTML, CSS, JavaScript)",
                {
                    **ok("The file, with the content type of its extension.", {}, "*/*"),
                    **errors(404),
                },
                parameters=[
                    path_param(
                        "filename",
                        string(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._/-]*$"),
                        "A file of the explorer, e.g. `index.html`.",
                    )
                ],
            )
        },
    }


# --- the document --------------------------------------------------------------------------------

DESCRIPTION = (
    """\
The HTTP API of a Tally node (SPEC 3.5). Amounts are integers in base units; hashes and txids \
are display hex (64 characters, byte-reversed as Bitcoin shows them); times are Unix seconds.

Errors are `{"error": {"code", "message"}}` with status 400, 401, 403, 404, 413, 414, 415, 431 \
(and 429 on `/p2p/`); `code` is the reject code of a refused transaction or block, otherwise \
the HTTP reason as a slug. Bad input never produces a 500. Every route answers 403 \
`forbidden` to a `Host` that does not name the node (its bind address and port; `localhost`, \
`127.0.0.1`, `[::1]` when bound to loopback; names given with `--allow-host`) and to a POST \
from a foreign `Origin`; a body must be `application/json` or `application/msgpack` (415 \
otherwise).

Admin routes need `Authorization: Bearer <token>`, the token written at start-up to \
`<datadir>/.cookie` as `__cookie__:<token>`. """
    f"A URL (path and query) is at most {MAX_URL_BYTES:,} bytes (414 `uri-too-long` beyond, "
    f"before any other check) and a header field at most {MAX_HEADER_BYTES:,} bytes (431). "
    """\
Request bodies are at most 4 MB; `POST /txs` takes at most 1,000 transactions; paged lists \
hold 25 items.

The `/p2p/` routes are for other nodes: msgpack maps both ways (docs/PROTOCOL.md section 9)."""
)


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a new dict on each call)."""
    paths: dict[str, Schema] = {
        **chain_paths(),
        **tx_paths(),
        **address_paths(),
        **xpub_paths(),
        **mempool_paths(),
        **node_paths(),
        **admin_paths(),
        **p2p_paths(),
        **outside_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tally node API",
            "version": "1",
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/", "description": "the node itself"}],
        "tags": [
            {"name": "chain", "description": "The best chain and lookups."},
            {"name": "blocks", "description": "Blocks."},
            {"name": "transactions", "description": "Transactions, and submitting them."},
            {"name": "addresses", "description": "Addresses: totals, history, unspent outputs."},
            {"name": "mempool", "description": "Unconfirmed transactions and fees."},
            {"name": "node", "description": "The node itself."},
            {"name": "admin", "description": "Operator commands; need the cookie's token."},
            {"name": "outside", "description": "Routes outside `/api/v1/`."},
            {
                "name": "p2p",
                "description": "Node-to-node routes (SPEC 3.4): msgpack in, msgpack out.",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "responses": component_responses(),
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
