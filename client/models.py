"""Typed models of every JSON answer of the HTTP API (SPEC 3.5): the one definition of each shape.

Job: one ``msgspec.Struct`` per JSON object the public and admin routes answer, and per JSON body
they take. ``node.api.views`` and ``node.api.accounts`` build these; ``node.api.app`` encodes them
with ``msgspec.json.encode``; ``node.api.openapi`` generates the OpenAPI document's schemas from
them (``msgspec.json.schema_components``), so a field added, renamed or retyped here is served and
documented at once.

Invariants:
- field names, order and types are exactly what the API has always served (docs/API.md); every
  field is always present (no defaults), a field that may be ``null`` is typed ``X | None``;
- amounts are ``int`` base units, hashes and txids display hex (``Hash``), times Unix seconds;
- answer models forbid unknown fields, so their schemas say ``additionalProperties: false``;
- a shape with several variants that no string field tells apart (a transaction's status, an
  output's spender, one answer of ``POST /txs``) is a ``one_of`` of its variant structs: typed as
  their union for mypy, documented as a ``oneOf`` of their references (``VARIANTS`` lists the
  structs the document must carry for those references).

Left to others: the values (``node.api.views``), paging limits and route parameters
(``node.api.openapi``'s route table, from the modules that enforce them), the ``/p2p/`` messages
(msgpack, ``node.p2p.messages``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import msgspec

from consensus.params import NETWORKS

API = "/api/v1"
"""Where the public routes live."""
MAX_BATCH = 1_000
"""Transactions one ``POST /txs`` takes at most."""
GAP_LIMIT = 20
"""The xpub routes derive each chain of an account until this many unused addresses in a row
(BIP44's gap limit); a wallet restores with the same limit."""
TARGETS = (1, 3, 6, 12, 25)
"""The confirmation targets, in blocks, that ``/fee-estimates`` answers a rate for (SPEC 3.5);
``node.fees`` estimates exactly these."""

REF_TEMPLATE = "#/components/schemas/{name}"
"""Where the OpenAPI document keeps the models' schemas."""

MAX_UINT32 = 2**32 - 1
MAX_AMOUNT = 2**63 - 1

DISPLAY_HASH_PATTERN = "^[0-9a-f]{64}$"
"""What the node answers for a hash or txid: lowercase display hex."""
BASE58_PATTERN = "^[1-9A-HJ-NP-Za-km-z]+$"
CODE_PATTERN = "^[a-z0-9]+(-[a-z0-9]+)*$"

Hash = Annotated[
    str,
    msgspec.Meta(
        pattern=DISPLAY_HASH_PATTERN,
        description="A block hash or txid as display hex (byte-reversed, lowercase).",
    ),
]
Address = Annotated[str, msgspec.Meta(pattern=BASE58_PATTERN, description="A Base58Check address.")]
Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="base units")]
Count = Annotated[int, msgspec.Meta(ge=0)]
UInt32 = Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)]
Height = Annotated[int, msgspec.Meta(ge=0, description="height in the best chain")]
UnixTime = Annotated[int, msgspec.Meta(ge=0, description="Unix seconds")]


AlwaysTrue = Annotated[bool, msgspec.Meta(extra_json_schema={"const": True})]
AlwaysFalse = Annotated[bool, msgspec.Meta(extra_json_schema={"const": False})]
"""Booleans documented as always one value (msgspec's ``Literal`` takes no booleans)."""
AlwaysZero = Annotated[int, msgspec.Meta(extra_json_schema={"const": 0})]


def one_of(description: str, *variants: type[msgspec.Struct]) -> Any:
    """A value that is one of ``variants``: encoded as whichever it is, documented as a
    ``oneOf`` of their component references."""
    refs = [{"$ref": REF_TEMPLATE.format(name=v.__name__)} for v in variants]
    return Annotated[Any, msgspec.Meta(description=description, extra_json_schema={"oneOf": refs})]


class Model(msgspec.Struct, forbid_unknown_fields=True):
    """An answer of the API: exactly its fields, all of them present."""


# --- errors --------------------------------------------------------------------------------------


class ErrorBody(Model):
    """What went wrong."""

    code: Annotated[
        str,
        msgspec.Meta(
            pattern=CODE_PATTERN,
            description="The reject code of a refused transaction or block (`bad-encoding`, "
            "`txn-already-known`, `high-hash`...), `bad-address`, `not-allowed`, or the HTTP "
            "reason as a slug (`bad-request`, `unauthorized`, `not-found`, `method-not-allowed`, "
            "`payload-too-large`, `uri-too-long`).",
        ),
    ]
    message: Annotated[str, msgspec.Meta(description="A sentence for people.")]


class Error(Model):
    """Every error answer."""

    error: ErrorBody


def error(code: str, message: str) -> Error:
    return Error(ErrorBody(code, message))


# --- chain ---------------------------------------------------------------------------------------


class MempoolCounts(Model):
    """Mempool size."""

    count: Count
    bytes: Annotated[int, msgspec.Meta(ge=0, description="serialized bytes")]


class Policy(Model):
    """The node's relay policy: what its mempool accepts and relays (SPEC 3.2). A wallet builds
    within it (the wallet reads these here, never from the node's code)."""

    min_relay_fee_rate: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="base units per byte of serialized transaction a transaction pays at "
            "least (`min-relay-fee-not-met` below it)",
        ),
    ]
    incremental_relay_fee_rate: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="a replacement pays at least the fees it evicts plus this many base "
            "units per byte of its own size (`insufficient-fee` otherwise)",
        ),
    ]
    max_standard_tx_size: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="the largest transaction accepted and relayed, serialized bytes"
        ),
    ]


class Info(Model):
    """The node at a glance."""

    network: Annotated[str, msgspec.Meta(extra_json_schema={"enum": sorted(NETWORKS)})]
    height: Height
    best_hash: Hash
    chainwork: Annotated[
        str,
        msgspec.Meta(
            pattern="^[0-9a-f]{64,}$", description="Total work of the best chain, zero-padded hex"
        ),
    ]
    peers: Annotated[int, msgspec.Meta(ge=0, description="connected peers")]
    mempool: MempoolCounts
    synced: Annotated[bool, msgspec.Meta(description="no connected peer reports more work")]
    version: Annotated[str, msgspec.Meta(description="The node's version")]
    policy: Policy


class Block(Model):
    """A block summary."""

    hash: Hash
    height: Height
    version: UInt32
    prev_hash: Hash
    next_hash: Annotated[
        Hash | None, msgspec.Meta(description="null at the tip and off the best chain")
    ]
    merkle_root: Hash
    time: Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32, description="Unix seconds")]
    median_time: Annotated[int, msgspec.Meta(ge=0, description="median time past, Unix seconds")]
    bits: Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32, description="compact target")]
    nonce: UInt32
    tx_count: Annotated[int, msgspec.Meta(ge=1)]
    size: Annotated[int, msgspec.Meta(ge=1, description="serialized bytes")]
    total_fees: Annotated[
        int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="fees of its transactions, base units")
    ]
    confirmations: Annotated[int, msgspec.Meta(ge=0, description="0 off the best chain")]
    in_best_chain: bool


class SubmitBlockResult(Model):
    """What became of a submitted block."""

    hash: Hash
    status: Annotated[
        Literal["active", "side", "orphan"],
        msgspec.Meta(
            description="on the best chain now; stored on another chain; or kept until its "
            "parent arrives"
        ),
    ]
    height: Annotated[int | None, msgspec.Meta(description="null for an orphan")]


# --- transactions --------------------------------------------------------------------------------


class TxInput(Model):
    """An input and the coin it spends."""

    txid: Hash
    index: UInt32
    address: Annotated[
        Address | None, msgspec.Meta(description="null for a coinbase, or when unknown")
    ]
    amount: Annotated[
        Amount | None,
        msgspec.Meta(
            description="of the coin spent; 0 for a coinbase; null when unknown (a transaction "
            "of a block off the best chain whose inputs this node cannot see)"
        ),
    ]
    coinbase: bool


class TxOutput(Model):
    """An output."""

    address: Address
    amount: Amount
    spent: bool


class TxConfirmed(Model):
    """In a block of the best chain."""

    confirmed: AlwaysTrue
    block_hash: Hash
    block_height: Height
    block_time: UnixTime
    confirmations: Annotated[int, msgspec.Meta(ge=0)]


class TxPending(Model):
    """In the mempool: every block field is null."""

    confirmed: AlwaysFalse
    block_hash: None
    block_height: None
    block_time: None
    confirmations: AlwaysZero


class TxReplaced(Model):
    """Replaced recently (RBF, bump-fee): no longer in the mempool; `replaced_by` is the txid of
    the transaction that replaced it directly (if that was replaced in turn, ask for its status).
    Remembered for 24 hours, the newest 10,000 (10 MB), and not across a restart; after that the
    txid is a 404."""

    confirmed: AlwaysFalse
    replaced_by: Hash


if TYPE_CHECKING:
    TxStatus = TxConfirmed | TxPending | TxReplaced
else:
    TxStatus = one_of(
        "Where the transaction is: in a block of the best chain, in the mempool, or replaced "
        "recently.",
        TxConfirmed,
        TxPending,
        TxReplaced,
    )


class Transaction(Model):
    """A transaction with the coins it spends and where it is."""

    txid: Hash
    wtxid: Hash
    version: UInt32
    locktime: UInt32
    size: Annotated[int, msgspec.Meta(ge=1, description="serialized bytes")]
    fee: Annotated[
        Amount | None,
        msgspec.Meta(
            description="inputs minus outputs; 0 for a coinbase; null when inputs are unknown"
        ),
    ]
    inputs: list[TxInput]
    outputs: list[TxOutput]
    status: TxStatus


class MerkleProof(Model):
    """The branch proving a confirmed transaction is in its block: its leaf is the transaction's
    wtxid (the header's merkle root is over the wtxids)."""

    block_height: Height
    block_hash: Hash
    merkle: Annotated[list[Hash], msgspec.Meta(description="sibling hashes from the leaf up")]
    pos: Annotated[int, msgspec.Meta(ge=0, description="the transaction's position in the block")]


class Unspent(Model):
    """Unspent."""

    spent: AlwaysFalse


class SpentBy(Model):
    """Spent by input `vin` of `txid`, in a block or in the mempool."""

    spent: AlwaysTrue
    txid: Hash
    vin: UInt32
    confirmed: bool


if TYPE_CHECKING:
    Outspend = Unspent | SpentBy
else:
    Outspend = one_of("What spends one output.", Unspent, SpentBy)


class TxidResult(Model):
    """An accepted transaction."""

    txid: Hash


if TYPE_CHECKING:
    TxsItem = TxidResult | Error
else:
    TxsItem = one_of("One transaction of the batch: accepted, or refused.", TxidResult, Error)


# --- addresses and accounts ----------------------------------------------------------------------


class AddressStats(Model):
    """Totals over an address's transactions."""

    funded_sum: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="received")]
    spent_sum: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="spent")]
    tx_count: Count


class Balance(Model):
    """Balance in base units."""

    confirmed: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="spendable now")]
    unconfirmed: Annotated[
        int,
        msgspec.Meta(
            description="mempool change (negative when the mempool spends confirmed coins)"
        ),
    ]
    immature: Annotated[
        int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="coinbase outputs not yet mature")
    ]


class AddressSummary(Model):
    """An address's totals and balance."""

    address: Annotated[str, msgspec.Meta(description="as asked")]
    chain_stats: AddressStats
    mempool_stats: AddressStats
    balance: Balance


class Utxo(Model):
    """An unspent output of the address (not spent in the mempool either)."""

    txid: Hash
    index: UInt32
    amount: Amount
    height: Annotated[int | None, msgspec.Meta(description="null while in the mempool")]
    coinbase: bool
    confirmations: Annotated[int, msgspec.Meta(ge=0, description="0 while in the mempool")]


class AccountAddress(Model):
    """A used address of the account."""

    address: str
    path: Annotated[str, msgspec.Meta(description="chain/index below the account key")]
    tx_count: Annotated[
        int, msgspec.Meta(ge=0, description="transactions touching it, mempool included")
    ]
    balance: Annotated[int, msgspec.Meta(description="confirmed + unconfirmed")]


class AccountSummary(Model):
    """An account's totals over its addresses within the gap limit."""

    xpub: Annotated[str, msgspec.Meta(description="as asked")]
    chain_stats: AddressStats
    mempool_stats: AddressStats
    balance: Balance
    addresses: list[AccountAddress]
    next_receive_index: Annotated[
        int, msgspec.Meta(ge=0, description="the first unused receive index after the used")
    ]
    next_change_index: Annotated[
        int, msgspec.Meta(ge=0, description="the first unused change index after the used")
    ]
    gap_limit: Count


class AccountUtxo(Model):
    """An unspent output of one of the account's addresses."""

    txid: Hash
    index: UInt32
    amount: Amount
    height: Annotated[int | None, msgspec.Meta(description="null while in the mempool")]
    coinbase: bool
    confirmations: Annotated[int, msgspec.Meta(ge=0, description="0 while in the mempool")]
    address: str
    path: Annotated[str, msgspec.Meta(description="chain/index below the account key")]


# --- mempool and fees ----------------------------------------------------------------------------


class MempoolSummary(Model):
    """The mempool."""

    count: Count
    bytes: Count
    total_fee: Amount
    fee_histogram: Annotated[
        list[Annotated[list[Count], msgspec.Meta(min_length=2, max_length=2)]],
        msgspec.Meta(
            description="[rate, bytes] pairs, highest rate first: the fee rate bucket in base "
            "units per byte (a power of two, or 0) and the bytes of transactions in it"
        ),
    ]


class MempoolRecent(Model):
    """A recently accepted transaction."""

    txid: Hash
    fee: Amount
    size: Annotated[int, msgspec.Meta(ge=1)]
    value: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="total of its outputs")]


FeeRate = Annotated[int, msgspec.Meta(ge=1, description="base units per byte")]

if TYPE_CHECKING:

    class FeeEstimates(Model):
        """Base units per byte to confirm within each target of ``TARGETS``."""

        def __init__(self, **rates: int) -> None: ...

else:
    FeeEstimates = msgspec.defstruct(
        "FeeEstimates",
        [(f"within_{t}", FeeRate, msgspec.field(name=str(t))) for t in TARGETS],
        bases=(Model,),
        module=__name__,
    )
    FeeEstimates.__doc__ = (
        "Base units per byte to confirm within "
        + ", ".join(f"{t}" for t in TARGETS)
        + " blocks (the keys)."
    )


def fee_estimates(rates: dict[int, int]) -> FeeEstimates:
    """The model of ``Fees.estimates()`` (a rate per target)."""
    return FeeEstimates(**{f"within_{t}": rate for t, rate in rates.items()})


# --- search, UTXO set, peers ---------------------------------------------------------------------


class Found(Model, tag_field="type"):
    """What ``/search`` found (the ``type`` field tells which)."""


class FoundBlock(Found, tag="block"):
    """A block, by height or hash."""

    id: Hash
    height: Height


class FoundTx(Found, tag="tx"):
    """A transaction, in a block or in the mempool."""

    id: Hash


class FoundAddress(Found, tag="address"):
    """An address of this network."""

    id: Address


class FoundXpub(Found, tag="xpub"):
    """An account's extended public key of this network (Rpub... on regtest)."""

    id: str


SearchResult = FoundBlock | FoundTx | FoundAddress | FoundXpub


class UtxoSetInfo(Model):
    """The UTXO set (SPEC 3.1)."""

    height: Height
    best_hash: Hash
    count: Annotated[int, msgspec.Meta(ge=0, description="unspent outputs")]
    total_amount: Amount
    hash: Annotated[
        str,
        msgspec.Meta(
            pattern="^[0-9a-f]{64}$", description="commitment to the whole set (hex, not reversed)"
        ),
    ]


class ConnectedPeer(Model):
    """A peer that completed the handshake."""

    url: Annotated[str, msgspec.Meta(description="its listening URL")]
    direction: Literal["outbound", "inbound"]
    height: Annotated[int, msgspec.Meta(ge=0, description="its tip height at the last handshake")]
    connected_at: UnixTime
    score: Annotated[int, msgspec.Meta(ge=0, description="misbehaviour points (banned at 100)")]


class BannedPeer(Model):
    """A banned peer."""

    peer: Annotated[str, msgspec.Meta(description="its URL, or `ip:<address>` when it sent none")]
    until: Annotated[int, msgspec.Meta(ge=0, description="end of the ban, Unix seconds")]


class Peers(Model):
    """Connected and banned peers, and those this node is partitioned from."""

    connected: list[ConnectedPeer]
    banned: list[BannedPeer]
    partitioned: Annotated[
        list[str],
        msgspec.Meta(description="peer URLs refused both ways until `heal` (devnet, regtest)"),
    ]


# --- admin answers -------------------------------------------------------------------------------


class Generated(Model):
    """The new blocks."""

    hashes: list[Hash]


class PeerAdded(Model):
    """The peer added, and whether the handshake with it succeeded."""

    added: Annotated[str, msgspec.Meta(description="the URL")]
    connected: bool


class MiningState(Model):
    """Whether mining runs now."""

    enabled: bool


class BlockMarked(Model):
    """The block, and the active chain's tip afterwards."""

    hash: Hash
    best_hash: Hash
    height: Annotated[int, msgspec.Meta(ge=0, description="the tip's height")]


class Stopping(Model):
    """The node is stopping."""

    stopping: AlwaysTrue


# --- request bodies (documented; the handlers parse them with their own messages) ----------------

HEX_PATTERN = "^([0-9a-fA-F]{2})*$"
HASH_PATTERN = "^[0-9a-fA-F]{64}$"
"""What the node accepts where a hash or txid is asked for (any case)."""


class RawObject(msgspec.Struct):
    """A serialized transaction or block as hex (other keys are ignored)."""

    raw: Annotated[
        str, msgspec.Meta(pattern=HEX_PATTERN, description="the msgpack serialization, hex")
    ]


class BlockMarkRequest(msgspec.Struct):
    """The block."""

    hash: Annotated[
        str, msgspec.Meta(pattern=HASH_PATTERN, description="a block hash, display hex")
    ]


class AddPeerRequest(msgspec.Struct):
    """The peer's base URL."""

    url: Annotated[str, msgspec.Meta(pattern="^https?://")]


NAMED: dict[str, Any] = {
    "Hash": Hash,
    "Address": Address,
    "TxStatus": TxStatus,
    "Outspend": Outspend,
    "SearchResult": SearchResult,
}
"""Unions the document names as components of their own (msgspec inlines an alias), as it always
has: ``#/components/schemas/TxStatus`` and the others stay valid references for clients."""

VARIANTS: tuple[type[msgspec.Struct], ...] = (
    TxConfirmed,
    TxPending,
    TxReplaced,
    Unspent,
    SpentBy,
    TxidResult,
    Error,
)
"""The structs ``one_of`` refers to: the document carries them even where no route names one."""


# --- devnet toolkit: time, automine, mempool, reorg ----------------------------------------------
# Answers of the regtest-only admin routes of SPEC 6 (node.api.routes.toolkit); their bodies'
# bounds are the route module's, documented in the route table (node.api.openapi).

AutomineMode = Literal["off", "tx", "interval"]
"""Anvil's mining modes: only on demand, a block per accepted batch of transactions, a block every
``interval`` seconds."""
AUTOMINE_MODES: tuple[str, ...] = get_args(AutomineMode)


class NodeTime(Model):
    """The node's clock: block templates, median-time checks and `time-too-new` follow it."""

    now: Annotated[int, msgspec.Meta(ge=0, description="the node's time, Unix seconds")]
    offset: Annotated[int, msgspec.Meta(description="seconds ahead of the wall clock (or behind)")]


class Automine(Model):
    """How the node mines in the background."""

    mode: AutomineMode
    interval: Annotated[
        float | None,
        msgspec.Meta(
            description="seconds between blocks in `interval` mode; `null` otherwise, and in "
            "`interval` mode when mining back to back (`POST /admin/mining` without "
            "`block_time`, `--mine-to` without `--block-time`)"
        ),
    ]
    address: Annotated[
        Address | None, msgspec.Meta(description="where the coinbases pay; `null` when off")
    ]


class MempoolCleared(Model):
    """How many transactions left the mempool."""

    removed: Count


class Reorged(Model):
    """A longer branch replaced the tip."""

    old_tip: Hash
    new_tip: Hash
    height: Annotated[int, msgspec.Meta(ge=0, description="the new tip's height")]
    disconnected: Annotated[
        list[Hash], msgspec.Meta(description="the blocks that left the chain, the old tip first")
    ]
    dropped: Annotated[
        list[Hash],
        msgspec.Meta(description="txids taken out of the mempool: `drop` and their descendants"),
    ]


# --- the event stream (SPEC 3.6; ``GET /api/v1/events``, ``node.events``, ``client.events``) -----

EVENT_RING = 10_000
"""Events a node keeps for replay (``{"since": seq}``); an older ``since`` is answered ``gap``."""
EVENT_CLIENT_QUEUE = 1_000
"""Events a client may fall behind (not yet written to its connection) while its connection
takes nothing for ``EVENT_STALL_SECONDS``; beyond both it is sent ``gap`` and dropped (as it is
when its place falls out of the ring). A burst (one block's thousands of ``tx_removed``) never
drops a client that keeps reading."""
EVENT_STALL_SECONDS = 5.0
"""Seconds one write to a client may wait for its connection to take data, while the client is
more than ``EVENT_CLIENT_QUEUE`` events behind, before it is dropped."""
MAX_EVENT_CLIENTS = 100
"""Clients of one node's stream at once (WebSocket and SSE together); 429 beyond."""
MAX_EVENT_SUBSCRIPTIONS = 100
"""Topics one client subscribes to at most (``blocks``, ``mempool`` and addresses together)."""
MAX_EVENT_MESSAGE = 8_192
"""Bytes of one message a WebSocket client may send; the node closes the connection (1009)
beyond."""
EVENT_TOPICS = ("blocks", "mempool")
"""The topics besides addresses: ``blocks`` (``block_connected``, ``block_disconnected``,
``tip_changed``) and ``mempool`` (``tx_added``, ``tx_removed``); the default subscription."""
ADDRESS_TOPIC = "address:"
"""Prefix of an address topic: ``address:<address>`` (``address`` events of that address)."""
REMOVAL_REASONS = ("confirmed", "replaced", "evicted", "expired", "conflict", "reorg")
RemovalReason = Literal["confirmed", "replaced", "evicted", "expired", "conflict", "reorg"]
"""Why a transaction left the mempool: mined (``confirmed``), replaced by fee (``replaced``),
evicted from a full mempool (``evicted``), too old (``expired``), spending what a block or
another transaction spent (``conflict``), not taken back after a reorganisation (``reorg``)."""
AddressStatus = Literal["mempool", "confirmed", "removed", "disconnected"]
"""What happened to a transaction touching a subscribed address: it entered the mempool,
a block confirmed it, it left the mempool unconfirmed, or its block left the best chain."""
Seq = Annotated[int, msgspec.Meta(ge=1, description="the node's event sequence number")]


class Event(Model, tag_field="type"):
    """One event of the node's stream: ``seq`` rises by exactly 1 per event on the node."""

    seq: Seq


class BlockConnectedEvent(Event, tag="block_connected"):
    """A block joined the best chain."""

    hash: Hash
    height: Height
    tx_count: Annotated[int, msgspec.Meta(ge=1)]


class BlockDisconnectedEvent(Event, tag="block_disconnected"):
    """A block left the best chain (a reorganisation, or ``/admin/invalidate``)."""

    hash: Hash
    height: Height


class TipChangedEvent(Event, tag="tip_changed"):
    """The best chain's tip is now this block (after the connects and disconnects that moved it)."""

    hash: Hash
    height: Height


class TxAddedEvent(Event, tag="tx_added"):
    """A transaction entered the mempool."""

    txid: Hash
    fee: Amount
    size: Annotated[int, msgspec.Meta(ge=1, description="bytes, serialized")]


class TxRemovedEvent(Event, tag="tx_removed"):
    """A transaction left the mempool, or (``reorg``) a transaction of a disconnected block
    did not come back to it."""

    txid: Hash
    reason: RemovalReason


class AddressEvent(Event, tag="address"):
    """A transaction paying or spending from a subscribed address."""

    address: Address
    txid: Hash
    status: AddressStatus


NodeEvent = (
    BlockConnectedEvent
    | BlockDisconnectedEvent
    | TipChangedEvent
    | TxAddedEvent
    | TxRemovedEvent
    | AddressEvent
)


class StreamNotice(Model, tag_field="type"):
    """A message of the stream to one client, outside the node's sequence (no ``seq``)."""


class GapNotice(StreamNotice, tag="gap"):
    """Events this client will not get: ``after`` is the last seq it asked from or was given,
    ``next`` the first the node can still give. ``reason``: ``too-old`` (``since`` older than
    the ring: the stream goes on from ``next``), ``unknown`` (``since`` above the node's latest
    seq, as after a node restart: the stream goes on live), ``behind`` (the client fell more
    than the per-client queue behind: it is dropped)."""

    after: Annotated[int, msgspec.Meta(ge=0)]
    next: Annotated[int, msgspec.Meta(ge=1)]
    reason: Literal["too-old", "unknown", "behind"]


class SubscribedNotice(StreamNotice, tag="subscribed"):
    """The client's topics from now on, and the node's latest seq when they took effect."""

    subscribe: list[str]
    seq: Annotated[int, msgspec.Meta(ge=0)]


class ErrorNotice(StreamNotice, tag="error"):
    """A client message the node could not follow (the connection stays open)."""

    error: ErrorBody


StreamMessage = NodeEvent | GapNotice | SubscribedNotice | ErrorNotice
"""Anything a client of ``/api/v1/events`` receives."""


class EventsInfo(Model):
    """The stream's state (``GET /api/v1/events`` without an upgrade or ``Accept:
    text/event-stream``)."""

    seq: Annotated[int, msgspec.Meta(ge=0, description="the latest event's seq (0: none yet)")]
    oldest: Annotated[int, msgspec.Meta(ge=1, description="the oldest seq ``since`` replays")]
    ring: Annotated[int, msgspec.Meta(ge=1, description="events kept for replay")]
    clients: Count
    max_clients: Count
    dropped: Annotated[int, msgspec.Meta(ge=0, description="clients dropped (behind) so far")]


class EventsRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A WebSocket client's message: new topics (replacing the old), a replay point, or both."""

    subscribe: Annotated[list[str], msgspec.Meta(max_length=MAX_EVENT_SUBSCRIPTIONS)] | None = None
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None


STREAM_MODELS: tuple[Any, ...] = (StreamMessage, EventsRequest)
"""What the event stream sends and takes, documented as components though no HTTP answer names
them (the OpenAPI document has no WebSocket messages)."""
# --- devnet toolkit: snapshots, partitions -------------------------------------------------------

SNAPSHOT_NAME_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
"""A snapshot's name: 1 to 64 letters, digits, `_`, `.`, `-`, not starting with `.` or `-`."""
MAX_SNAPSHOTS = 64
"""Snapshots one node keeps at most (retaking a name replaces it)."""
MAX_PARTITIONED = 64
"""Peer URLs one node refuses at once at most (``/admin/partition``)."""

SnapshotName = Annotated[str, msgspec.Meta(pattern=SNAPSHOT_NAME_PATTERN)]


class Snapshot(Model):
    """A snapshot: its name and the tip it holds."""

    name: SnapshotName
    height: Height
    best_hash: Hash


class SnapshotListed(Model):
    """A snapshot kept by the node."""

    name: SnapshotName
    height: Height
    best_hash: Hash
    created: UnixTime


class Partitioned(Model):
    """The peers this node refuses to talk with, in both directions, until `heal`."""

    partitioned: list[str]


class Healed(Model):
    """The peers no longer refused, and those of them connected again."""

    healed: list[str]
    reconnected: list[str]


class SnapshotRequest(msgspec.Struct):
    """The snapshot's name."""

    name: SnapshotName


PORT_PATTERN = (
    "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
PEER_URL_PATTERN = (
    r"^https?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    f"(:{PORT_PATTERN})?" + r"(/[^?#]*)?$"
)
"""A peer's base URL as the node takes one (``node.p2p.addrman.usable_url``): http(s), a host
name or address, a port from 1 to 65535 if given, no query."""


class PartitionRequest(msgspec.Struct):
    """The peers' base URLs (as `GET /peers` shows them)."""

    peers: Annotated[
        list[
            Annotated[
                str,
                msgspec.Meta(
                    pattern=PEER_URL_PATTERN,
                    description="at most as long as a P2P address (docs/PROTOCOL.md)",
                ),
            ]
        ],
        msgspec.Meta(min_length=1, max_length=MAX_PARTITIONED),
    ]
