"""The typed client of one node's HTTP API (SPEC 3.5), over the standard library's ``urllib``.

Job: one method per route, answering the route's model of ``client.models`` (decoded with
``msgspec``, so an answer that is not the documented shape is an error here, not a ``KeyError``
three calls later); every failure is one of two exceptions a command line prints as one line:
``NodeUnreachableError`` (no answer at all: refused, timed out, not HTTP) and ``NodeError`` (the
node answered with an error, carrying its HTTP ``status``, its ``code``, such as a reject code
like ``insufficient-fee``, and its message). ``map`` runs many independent calls on a small
thread pool, which is how a wallet's address scan stays quick.

Invariants:
- only the URL given is ever contacted (no redirects are followed to other hosts: ``urllib``
  follows them, but the node never answers one);
- the admin token is sent only on ``/admin/`` routes, and only if one was given (``from_datadir``
  reads it from ``<datadir>/.cookie`` as ``tally-node``'s own commands do);
- no retries: a call either gets its answer or says why not;
- an answer is read up to ``MAX_ANSWER`` bytes (an error's body up to ``MAX_ERROR``): a node
  cannot make a client hold more; anything that is not the documented shape, JSON that does not
  parse included, is ``NodeError`` ``bad-answer``, never a ``ValueError`` or ``KeyError``.

Left to others: what the answers mean (``client.models`` documents each field), the event stream
(``client.events``), starting nodes (``client.testing``).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from client import models as m
from client.models import API, MAX_BATCH

TIMEOUT = 30.0
"""Seconds a call waits for its answer by default."""
WORKERS = 8
"""Threads ``map`` uses at most."""
MAX_PAGES = 1000
"""Pages of one paged answer followed at most (a bound on what a node can make a client hold)."""
MAX_ANSWER = 64 * 2**20
"""Bytes of one answer read at most (the largest the node sends is far below: a page of 10,000
mempool txids is under 1 MB, a block at most ``consensus.validation.MAX_BLOCK_SIZE``)."""
MAX_ERROR = 64 * 2**10
"""Bytes of an error answer's body read at most."""
COOKIE_FILE = ".cookie"
URL_FILE = ".url"
"""Where a running node writes its admin token and its URL, in its data directory (SPEC 3.7)."""

JSON = "application/json"
MSGPACK = "application/msgpack"

_HASH = re.compile(m.DISPLAY_HASH_PATTERN)

T = TypeVar("T")
R = TypeVar("R")
U = TypeVar("U", m.Utxo, m.AccountUtxo)


class ClientError(Exception):
    """Anything that went wrong talking to a node."""


class NodeUnreachableError(ClientError):
    """No answer from the node at all."""


class NodeError(ClientError):
    """The node answered with an error: HTTP ``status``, ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message


def bad_answer(what: str) -> NodeError:
    return NodeError(200, "bad-answer", what)


def read_datadir(datadir: Path) -> tuple[str | None, str | None]:
    """The URL and admin token a node running in ``datadir`` wrote (None where it wrote none)."""
    try:
        url: str | None = (datadir / URL_FILE).read_text().strip()
    except OSError:
        url = None
    if url is not None and not url.startswith(("http://", "https://")):
        url = None
    try:
        token: str | None = (datadir / COOKIE_FILE).read_text().strip().split(":", 1)[-1]
    except OSError:
        token = None
    return url, token


# --- the variants an answer's field may take (see ``client.models.one_of``) ----------------------


def tx_status(value: Any) -> m.TxStatus:
    """The status variant ``value`` (a decoded JSON object) is."""
    if isinstance(value, m.TxConfirmed | m.TxPending | m.TxReplaced):
        return value
    if not isinstance(value, dict):
        raise bad_answer("a transaction status is not an object")
    if value.get("confirmed") is True:
        return _convert(value, m.TxConfirmed)
    if "replaced_by" in value:
        return _convert(value, m.TxReplaced)
    return _convert(value, m.TxPending)


def outspend(value: Any) -> m.Outspend:
    if not isinstance(value, dict):
        raise bad_answer("an outspend is not an object")
    if value.get("spent") is True:
        return _convert(value, m.SpentBy)
    return _convert(value, m.Unspent)


def txs_item(value: Any) -> m.TxsItem:
    if not isinstance(value, dict):
        raise bad_answer("an item of POST /txs is not an object")
    if "error" in value:
        return _convert(value, m.Error)
    return _convert(value, m.TxidResult)


def _convert(value: Any, model: type[T]) -> T:
    try:
        return msgspec.convert(value, type=model)
    except msgspec.ValidationError as err:
        raise bad_answer(f"not a {getattr(model, '__name__', model)}: {err}") from None


def _hash(text: str, route: str) -> str:
    """``text`` if it is a hash as the node writes one (display hex), else ``bad-answer``."""
    if not _HASH.fullmatch(text):
        raise bad_answer(f"{route} is not a block hash")
    return text


def _transaction(tx: m.Transaction) -> m.Transaction:
    tx.status = tx_status(tx.status)
    return tx


class Client:
    """A client of the node whose root URL is ``url`` (``http://127.0.0.1:18844``); ``token`` is
    its admin token, needed only for the admin methods."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"node URL {url!r} is not an http:// URL")
        path = parsed.path.rstrip("/")
        if path == API or path.startswith(API + "/"):
            root = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, "", "", ""))
            raise ValueError(
                f"node URL {url!r} names the API, not the node: give the node's root URL, "
                f"{root} ({API} is added to it)"
            )
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_datadir(cls, datadir: Path, *, timeout: float = TIMEOUT) -> Client:
        """The client of the node running in ``datadir``, with its admin token."""
        url, token = read_datadir(datadir)
        if url is None:
            raise NodeUnreachableError(
                f"no node is running with the data directory {datadir} (no {URL_FILE} there)"
            )
        return cls(url, token=token, timeout=timeout)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --- transport ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        timeout: float | None = None,
    ) -> bytes:
        """The body of the answer to ``method`` ``API + path``, or one of the two errors."""
        headers = {"Accept": JSON}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if path.startswith("/admin/"):
            if self.token is None:
                raise NodeError(401, "unauthorized", f"{path} needs the node's admin token")
            headers["Authorization"] = f"Bearer {self.token}"
        wait = self.timeout if timeout is None else timeout
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url + API + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=wait) as response:  # noqa: S310
                data: bytes = response.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as err:
            raise self._error(err) from None
        except urllib.error.URLError as err:
            reason = getattr(err.reason, "strerror", None) or str(err.reason)
            raise NodeUnreachableError(f"cannot reach the node at {self.url} ({reason})") from None
        except TimeoutError:
            raise NodeUnreachableError(
                f"cannot reach the node at {self.url} (no answer within {wait:g} s)"
            ) from None
        except (OSError, ValueError) as err:  # connection reset, bad status line, ...
            raise NodeUnreachableError(f"cannot reach the node at {self.url} ({err})") from None
        if len(data) > MAX_ANSWER:
            raise bad_answer(f"{method} {path} answered more than {MAX_ANSWER:,} bytes")
        return data

    @staticmethod
    def _error(err: urllib.error.HTTPError) -> NodeError:
        try:
            data = msgspec.json.decode(err.read(MAX_ERROR), type=m.Error)
            return NodeError(err.code, data.error.code, data.error.message)
        except (msgspec.DecodeError, OSError):
            return NodeError(err.code, f"http-{err.code}", str(err.reason))

    def get(self, path: str, model: type[T], *, timeout: float | None = None) -> T:
        """``GET path`` decoded as ``model``."""
        return self._decode(self.request("GET", path, timeout=timeout), model, f"GET {path}")

    def post(self, path: str, payload: Any, model: type[T], *, timeout: float | None = None) -> T:
        """``POST path`` with ``payload`` as JSON, the answer decoded as ``model``."""
        body = msgspec.json.encode(payload)
        answer = self.request("POST", path, body, JSON, timeout=timeout)
        return self._decode(answer, model, f"POST {path}")

    @staticmethod
    def _decode(body: bytes, model: type[T], what: str) -> T:
        try:
            return msgspec.json.decode(body, type=model)
        except msgspec.DecodeError as err:
            raise bad_answer(f"{what} did not answer its documented shape ({err})") from None

    def text(self, path: str) -> str:
        return self.request("GET", path).decode("utf-8", "replace").strip()

    def get_json(self, path: str) -> Any:
        """``GET path`` as plain JSON (for routes a caller reads loosely)."""
        try:
            return json.loads(self.request("GET", path))
        except ValueError:
            raise bad_answer(f"GET {path} did not answer JSON") from None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` on up to ``WORKERS`` threads, in order."""
        items = list(items)
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))

    # --- chain and blocks -----------------------------------------------------------------------

    def info(self) -> m.Info:
        return self.get("/info", m.Info)

    def tip_height(self) -> int:
        text = self.text("/blocks/tip/height")
        if not text.isdigit():
            raise bad_answer("/blocks/tip/height is not a number")
        return int(text)

    def tip_hash(self) -> str:
        return _hash(self.text("/blocks/tip/hash"), "/blocks/tip/hash")

    def blocks(self, start_height: int | None = None) -> list[m.Block]:
        query = "" if start_height is None else f"?start_height={start_height}"
        return self.get(f"/blocks{query}", list[m.Block])

    def block(self, block_hash: str) -> m.Block:
        return self.get(f"/block/{block_hash}", m.Block)

    def block_txids(self, block_hash: str) -> list[str]:
        return self.get(f"/block/{block_hash}/txids", list[str])

    def block_txs(self, block_hash: str, start_index: int = 0) -> list[m.Transaction]:
        txs = self.get(f"/block/{block_hash}/txs?start_index={start_index}", list[m.Transaction])
        return [_transaction(tx) for tx in txs]

    def block_raw(self, block_hash: str) -> bytes:
        return self.request("GET", f"/block/{block_hash}/raw")

    def block_hash(self, height: int) -> str:
        return _hash(self.text(f"/block-height/{height}"), f"/block-height/{height}")

    def post_block(self, raw: bytes) -> str:
        """Submit a serialized block; its hash, or ``NodeError`` with the reject code."""
        answer = self.request("POST", "/block", raw, MSGPACK)
        return self._decode(answer, m.SubmitBlockResult, "POST /block").hash

    # --- transactions ---------------------------------------------------------------------------

    def tx(self, txid: str) -> m.Transaction:
        return _transaction(self.get(f"/tx/{txid}", m.Transaction))

    def tx_status(self, txid: str) -> m.TxStatus:
        return tx_status(self.get_json(f"/tx/{txid}/status"))

    def tx_raw(self, txid: str) -> bytes:
        return self.request("GET", f"/tx/{txid}/raw")

    def merkle_proof(self, txid: str) -> m.MerkleProof:
        return self.get(f"/tx/{txid}/merkle-proof", m.MerkleProof)

    def outspends(self, txid: str) -> list[m.Outspend]:
        answer = self.get_json(f"/tx/{txid}/outspends")
        if not isinstance(answer, list):
            raise bad_answer("outspends is not a list")
        return [outspend(item) for item in answer]

    def post_tx(self, raw: bytes) -> str:
        """Submit a serialized transaction; its txid, or ``NodeError`` with the reject code."""
        answer = self.request("POST", "/tx", raw, MSGPACK)
        return self._decode(answer, m.TxidResult, "POST /tx").txid

    def post_txs(self, raws: Iterable[bytes]) -> list[m.TxsItem]:
        """Submit transactions in batches of ``MAX_BATCH``; one result each, in order."""
        import msgpack  # the wire format of a batch; imported where it is needed

        pending = list(raws)
        results: list[m.TxsItem] = []
        for start in range(0, len(pending), MAX_BATCH):
            batch = pending[start : start + MAX_BATCH]
            body = msgpack.packb(batch, use_bin_type=True)
            answer = self._decode(self.request("POST", "/txs", body, MSGPACK), Any, "POST /txs")
            if not isinstance(answer, list) or len(answer) != len(batch):
                raise bad_answer("POST /txs did not answer a list of one result per transaction")
            results += [txs_item(item) for item in answer]
        return results

    # --- addresses and accounts -----------------------------------------------------------------

    def address(self, address: str) -> m.AddressSummary:
        return self.get(f"/address/{address}", m.AddressSummary)

    def address_txs(self, address: str, after_txid: str | None = None) -> list[m.Transaction]:
        query = "" if after_txid is None else "?after_txid=" + after_txid
        txs = self.get(f"/address/{address}/txs{query}", list[m.Transaction])
        return [_transaction(tx) for tx in txs]

    def address_utxos(self, address: str, max_pages: int = MAX_PAGES) -> list[m.Utxo]:
        """Every unspent output of ``address``, its pages followed until an empty one."""
        return self._paged(f"/address/{address}/utxo", m.Utxo, max_pages)

    def xpub(self, xpub: str) -> m.AccountSummary:
        return self.get(f"/xpub/{xpub}", m.AccountSummary)

    def xpub_txs(self, xpub: str, after_txid: str | None = None) -> list[m.Transaction]:
        query = "" if after_txid is None else "?after_txid=" + after_txid
        txs = self.get(f"/xpub/{xpub}/txs{query}", list[m.Transaction])
        return [_transaction(tx) for tx in txs]

    def xpub_utxos(self, xpub: str, max_pages: int = MAX_PAGES) -> list[m.AccountUtxo]:
        return self._paged(f"/xpub/{xpub}/utxo", m.AccountUtxo, max_pages)

    def _paged(self, route: str, model: type[U], max_pages: int) -> list[U]:
        rows: list[U] = []
        query = ""
        for _ in range(max_pages):
            page: list[U] = self.get(f"{route}{query}", list[model])  # type: ignore[valid-type]
            if not page:
                return rows
            rows.extend(page)
            cursor = f"?after={page[-1].txid}:{page[-1].index}"
            if cursor == query:
                raise bad_answer("the node sent one page of outputs twice")
            query = cursor
        raise bad_answer(f"more than {max_pages} pages of unspent outputs")

    # --- mempool, fees, search, peers -----------------------------------------------------------

    def mempool(self) -> m.MempoolSummary:
        return self.get("/mempool", m.MempoolSummary)

    def mempool_txids(self, after_txid: str | None = None) -> list[str]:
        query = "" if after_txid is None else "?after_txid=" + after_txid
        return self.get(f"/mempool/txids{query}", list[str])

    def mempool_all_txids(self, max_pages: int = MAX_PAGES) -> list[str]:
        """Every txid in the mempool, in acceptance order, its pages followed."""
        txids: list[str] = []
        after: str | None = None
        for _ in range(max_pages):
            page = self.mempool_txids(after)
            if not page:
                return txids
            txids += page
            after = page[-1]
        raise bad_answer(f"more than {max_pages} pages of mempool txids")

    def mempool_recent(self) -> list[m.MempoolRecent]:
        return self.get("/mempool/recent", list[m.MempoolRecent])

    def fee_estimates(self) -> dict[int, int]:
        """Base units per byte for each confirmation target (``client.models.TARGETS``)."""
        answer = self.get("/fee-estimates", m.FeeEstimates)
        return {t: int(getattr(answer, f"within_{t}")) for t in m.TARGETS}

    def search(self, query: str) -> m.SearchResult:
        found: m.SearchResult = self.get(
            "/search?q=" + urllib.parse.quote(query, safe=""),
            m.FoundBlock | m.FoundTx | m.FoundAddress | m.FoundXpub,  # type: ignore[arg-type]
        )
        return found

    def utxo_set_info(self) -> m.UtxoSetInfo:
        return self.get("/utxo-set-info", m.UtxoSetInfo)

    def peers(self) -> m.Peers:
        return self.get("/peers", m.Peers)

    # --- admin (the token) ----------------------------------------------------------------------

    def generate(self, count: int, address: str) -> list[str]:
        """Mine ``count`` blocks paying ``address`` (regtest); their hashes."""
        answer = self.post(
            "/admin/generate", {"count": count, "address": address}, m.Generated, timeout=600
        )
        return answer.hashes

    def add_peer(self, url: str) -> m.PeerAdded:
        return self.post("/admin/peers", {"url": url}, m.PeerAdded)

    def set_mining(
        self,
        enabled: bool,
        address: str | None = None,
        block_time: float | None = None,
    ) -> m.MiningState:
        body: dict[str, Any] = {"enabled": enabled}
        if address is not None:
            body["address"] = address
        if block_time is not None:
            body["block_time"] = block_time
        return self.post("/admin/mining", body, m.MiningState)

    def invalidate(self, block_hash: str) -> m.BlockMarked:
        return self.post("/admin/invalidate", {"hash": block_hash}, m.BlockMarked, timeout=600)

    def reconsider(self, block_hash: str) -> m.BlockMarked:
        return self.post("/admin/reconsider", {"hash": block_hash}, m.BlockMarked, timeout=600)

    def stop(self) -> m.Stopping:
        return self.post("/admin/stop", {}, m.Stopping)

    # --- devnet toolkit: time, automine, mempool, reorg -----------------------------------------
    # Regtest only: on another network each answers NodeError(403, "not-allowed").

    def time(self) -> m.NodeTime:
        """The node's clock (what block times and ``time-too-new`` follow)."""
        return self.get("/admin/time", m.NodeTime)

    def time_set(self, unix: int) -> m.NodeTime:
        """Make the node's clock read ``unix`` now (it runs on from there)."""
        return self.post("/admin/time", {"set": unix}, m.NodeTime)

    def time_advance(self, seconds: int) -> m.NodeTime:
        return self.post("/admin/time", {"advance": seconds}, m.NodeTime)

    def time_reset(self) -> m.NodeTime:
        """Back to the wall clock."""
        return self.post("/admin/time", {"reset": True}, m.NodeTime)

    def automine_state(self) -> m.Automine:
        return self.get("/admin/automine", m.Automine)

    def automine(
        self, mode: str, interval: float | None = None, address: str | None = None
    ) -> m.Automine:
        """``off``, ``tx`` (a block per accepted batch) or ``interval`` (every ``interval``
        seconds; back to back without one); ``address`` defaults to the node's mining
        address."""
        body: dict[str, Any] = {"mode": mode}
        if interval is not None:
            body["interval"] = interval
        if address is not None:
            body["address"] = address
        return self.post("/admin/automine", body, m.Automine)

    def mempool_clear(self, txids: Iterable[str] | None = None) -> int:
        """Remove every transaction, or ``txids`` and their descendants; how many went."""
        body: dict[str, Any] = {} if txids is None else {"txids": list(txids)}
        return self.post("/admin/mempool/clear", body, m.MempoolCleared).removed

    def reorg(self, depth: int, drop: Iterable[str] = (), address: str | None = None) -> m.Reorged:
        """Replace the last ``depth`` blocks by ``depth + 1`` coinbase-only ones; the replaced
        blocks' transactions return to the mempool but ``drop`` (and their descendants)."""
        body: dict[str, Any] = {"depth": depth, "drop": list(drop)}
        if address is not None:
            body["address"] = address
        return self.post("/admin/reorg", body, m.Reorged, timeout=600)

    # --- devnet toolkit: snapshots, partitions ------------------------------------------------

    def snapshot(self, name: str) -> m.Snapshot:
        """Copy the node's whole state as snapshot ``name`` (replacing one of that name)."""
        return self.post("/admin/snapshot", {"name": name}, m.Snapshot, timeout=600)

    def snapshots(self) -> list[m.SnapshotListed]:
        """The node's snapshots, oldest first."""
        return self.get("/admin/snapshots", list[m.SnapshotListed])

    def revert(self, name: str) -> m.Snapshot:
        """Put the node's whole state back to snapshot ``name`` (kept); ``NodeError`` 404 if
        there is none."""
        return self.post("/admin/revert", {"name": name}, m.Snapshot, timeout=600)

    def partition(self, peers: list[str]) -> m.Partitioned:
        """Refuse the peers at these URLs both ways until ``heal``; every URL refused now."""
        return self.post("/admin/partition", {"peers": peers}, m.Partitioned)

    def heal(self) -> m.Healed:
        """Lift every partition and dial those peers again."""
        return self.post("/admin/heal", {}, m.Healed)
