"""P2P policy: every limit, interval and score both sides of a link rely on, written once.

Job: one home for the values a sender must respect because the receiver enforces them (message
item limits, body limits per route, rate limits, relay batching), the timeouts of each request,
the table bounds, and the misbehaviour score of each kind of bad input. The routes (receiving
side) and the senders (``peers``, ``relay``, ``sync``) import them from here, never copy them, so
an honest node's own traffic always stays inside the limits it enforces on others.

The item limits of the wire schemas (``MAX_INV``, ``MAX_GETDATA``, ``MAX_HEADERS`` ...) are
defined beside the schemas in ``node.p2p.messages`` (they are part of the wire format) and are
re-exported here, so every user imports them from this one module.

State: none (constants and pure functions). Leaves to others: enforcing them (routes, banman,
relay, sync).
"""

from __future__ import annotations

from consensus import NetworkParams, ValidationError
from consensus import errors as codes
from consensus.errors import RejectCategory
from node.p2p.messages import MAX_ADDRS, MAX_GETDATA, MAX_HEADERS, MAX_INV, MAX_LOCATOR, MAX_URL

__all__ = [
    "MAX_ADDRS",
    "MAX_GETDATA",
    "MAX_HEADERS",
    "MAX_INV",
    "MAX_LOCATOR",
    "MAX_URL",
]

# --- what a receiver accepts (and so what a sender may send) -------------------------------------

BODY_LIMITS: dict[str, int] = {
    "handshake": 1_024,
    "inv": 64 * 1_024,
    "getdata": 32 * 1_024,
    "getheaders": 4 * 1_024,
    "addr": 32 * 1_024,
    "mempool": 64,
}
"""Largest request body per ``/p2p/`` route, in bytes. Every full message fits: an ``inv`` of
``MAX_INV`` hashes is about 35 KB, a ``getdata`` of ``MAX_GETDATA`` hashes about 17.5 KB."""

RATE_PER_SECOND = 200.0
"""Requests per second a peer may send to one node (a token bucket)..."""
RATE_BURST = 2_000.0
"""... with bursts of this many."""

ACCEPT_CHUNK = 100
"""Transactions of one ``getdata`` answer accepted per trip to the state thread: small enough
that the first are announced onwards while the rest are checked."""
MAX_GETDATA_ANSWER_BYTES = 16 * 1_024 * 1_024
"""A ``getdata`` answer stops adding items once it holds this many bytes (at least one item);
the requester asks again for what is missing."""

# --- relay ----------------------------------------------------------------------------------------

RELAY_INTERVAL_REGTEST = 0.05
RELAY_INTERVAL = 2.0


def relay_interval(params: NetworkParams) -> float:
    """Seconds between two ``inv`` batches to one peer: 50 ms on regtest (SPEC: at most 100),
    2 s elsewhere (Core trickles transactions every few seconds)."""
    return RELAY_INTERVAL_REGTEST if params.name == "regtest" else RELAY_INTERVAL


RELAY_QUEUE_LIMIT = 100_000
"""Hashes waiting to be announced to one peer at most (older ones are dropped first)."""
RELAY_RETRY_LIMIT = 5
"""An ``inv`` refused for rate (429) or lost is sent again this many times at most."""

# --- requests and their timeouts ------------------------------------------------------------------

CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 10.0
INV_TIMEOUT = 10.0
ADDR_TIMEOUT = 10.0
HEADERS_TIMEOUT = 5.0
"""A ``getheaders`` not answered within this time moves sync to the next peer."""
TX_REQUEST_TIMEOUT = 5.0
"""A ``getdata`` for transactions not answered in this time: ask the next announcer."""
BLOCK_REQUEST_TIMEOUT = 15.0
"""A ``getdata`` for blocks (up to ``DOWNLOAD_BATCH``) not answered in this time: the download
moves to another peer."""

MAX_CONNECTIONS_PER_PEER = 4
"""Open client connections to one peer (host and port) at most: one slow peer cannot take the
whole outbound pool."""
MAX_CLIENT_CONNECTIONS = 64
"""Open client connections to all peers together."""
CLIENT_KEEPALIVE = 10.0
"""Idle client connections are closed after this (well below the server's ``IDLE_TIMEOUT``)."""

MAX_IN_FLIGHT_PER_PEER = 1_000
"""Objects requested from one peer and not yet answered, at most."""
MAX_ANNOUNCED_PER_PEER = 10_000
"""Announced objects remembered per peer while they wait to be fetched (Core: 5,000)."""
MAX_TRACKED = 100_000
"""Objects tracked for download from all peers together."""

# --- sync -----------------------------------------------------------------------------------------

CLAIM_RETRY = 30.0
"""A peer that failed to back its claimed work is not synced from again for this long."""
REVERT_HOLD = 10.0
"""After a devnet revert, the peers of before are refused this long, unless they come back
with a new handshake nonce (reverted too) or the node is healed: a devnet reverts its nodes one
after another, and a node reverted first must not take back, from one not reverted yet, the
blocks and transactions the revert undid. (A peer that reverted before us and reconnected
already is held too: ``heal`` after reverting every node ends the hold at once.)"""
DOWNLOAD_BATCH = 16
"""Blocks per ``getdata`` during sync."""
DOWNLOAD_WINDOW = 128
"""Blocks downloaded ahead of the one being connected."""
CONNECT_CHUNK = 16
CONNECT_CHUNK_BYTES = 1_000_000
"""Downloaded blocks decoded and connected per trip to the state thread during sync: at most
this many, and no more bytes than this beyond the first (so an API read waits behind one chunk
at most, about what one full block costs, while small blocks no longer pay a thread hop each)."""

# --- peers ----------------------------------------------------------------------------------------

MAX_OUTBOUND = 8
PING_INTERVAL = 10.0
CONNECT_INTERVAL = 1.0
BACKOFF_MAX = 60.0
KNOWN_LIMIT = 50_000
"""Hashes remembered per peer as known to it (not announced to it again)."""
MAX_ADDRESSES = 1_000
"""Learned peer addresses kept at most (configured ones always)."""

# --- inbound connections (the HTTP server) --------------------------------------------------------

FIRST_REQUEST_TIMEOUT = 10.0
"""A new connection that has sent no byte of a request after this many seconds is closed."""
IDLE_TIMEOUT = 60.0
"""A kept-alive connection with no request in progress is closed after this many seconds."""
HEADER_TIMEOUT = 10.0
"""A request whose headers have not all arrived this long after its first byte is closed."""
BODY_TIMEOUT = 20.0
"""A request whose body has not all arrived this long after its headers is closed."""
MAX_CONNECTIONS = 512
"""Open inbound connections at most (well below a default limit of 1,024 open files)."""
MAX_CONNECTIONS_PER_IP = 32
"""Open inbound connections from one address at most (not for ``--whitelist`` addresses)."""

# --- misbehaviour and bans ------------------------------------------------------------------------

BAN_SCORE = 100
BAN_SECONDS = 24 * 60 * 60
SCORE_INVALID_OBJECT = 100
SCORE_MUTATED = 100
SCORE_MALFORMED = 20
SCORE_UNCONNECTED_HEADERS = 20
MAX_SCORES = 10_000
"""Scored peers remembered at most (the oldest forgotten first)."""
SCORE_SECONDS = 24 * 60 * 60
"""A score not raised for this long is forgotten."""
MAX_BANS = 10_000
"""Bans kept at most (the one that ends soonest is lifted first)."""

BLOCK_SCORES: dict[RejectCategory, int] = {
    RejectCategory.CONSENSUS: SCORE_INVALID_OBJECT,
    RejectCategory.CONTEXT: SCORE_INVALID_OBJECT,  # the block's parent fixes its chain
    RejectCategory.MUTATED: SCORE_MUTATED,
    RejectCategory.POLICY: 0,  # no block rule is policy: nobody to blame if one were
    RejectCategory.KNOWN: 0,
    RejectCategory.MISSING_PARENT: 0,
    RejectCategory.TIME_FUTURE: 0,
}
"""Misbehaviour points for a block refused in each category (Core's
``MaybePunishNodeForBlock``, except that a missing parent is an orphan, SPEC 2.5)."""
TX_SCORES: dict[RejectCategory, int] = {
    RejectCategory.CONSENSUS: SCORE_INVALID_OBJECT,
    RejectCategory.CONTEXT: 0,  # may be a race with a block, not malice
    RejectCategory.MUTATED: 0,  # no transaction rule is: as Core's TX_WITNESS_MUTATED, not scored
    RejectCategory.POLICY: 0,
    RejectCategory.KNOWN: 0,
    RejectCategory.MISSING_PARENT: 0,
    RejectCategory.TIME_FUTURE: 0,
}
"""Misbehaviour points for a transaction refused in each category: only a consensus break is
the sender's fault (Core's ``MaybePunishNodeForTx``)."""


def block_reject_score(reject: str | ValidationError) -> int:
    """Misbehaviour points for a block refused with ``reject`` (an error, or its code): decided
    by its category (``consensus.errors.CATEGORIES``), here and nowhere else."""
    category = reject.category if isinstance(reject, ValidationError) else codes.category_of(reject)
    return BLOCK_SCORES[category]


def tx_reject_score(code: str) -> int:
    """Misbehaviour points for a transaction refused with ``code``, by its category."""
    return TX_SCORES[codes.category_of(code)]
