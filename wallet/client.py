"""The node client: the few routes of the HTTP API (SPEC 3.5) the wallet needs, over ``urllib``.

Job: turn each route into one typed method, and every failure into one of two exceptions that
the command line can print as one line: ``NodeUnreachableError`` (no answer at all: refused,
timed out, DNS, not HTTP) and ``NodeError`` (the node answered with an error, carrying its
``code``, e.g. a reject code such as ``insufficient-fee``, and message). ``map`` runs many
independent GETs on a small thread pool, which is how address scans stay quick.

Only public routes are used; nothing secret is ever sent (transactions go out signed). No retries:
a command either gets its answers or reports why not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

API = "/api/v1"
TIMEOUT = 30.0
WORKERS = 8
MAX_UTXO_PAGES = 1000
"""A wallet reads at most this many pages of one address's unspent outputs (a bound on what a
node can make it hold)."""

T = TypeVar("T")
R = TypeVar("R")


class NodeUnreachableError(Exception):
    """No answer from the node at all."""


class NodeError(Exception):
    """The node answered with an error: HTTP ``status``, ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message


class NodeClient:
    """A client of one node's HTTP API at ``url`` (e.g. ``http://127.0.0.1:18844``)."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"node URL {url!r} is not an http:// URL")
        path = parsed.path.rstrip("/")
        if path == API or path.startswith(API + "/"):
            root = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, "", "", ""))
            raise ValueError(
                f"node URL {url!r} names the API, not the node: give the node's root URL, "
                f"{root} (the wallet adds {API} itself)"
            )
        self.url = url.rstrip("/")
        self.timeout = timeout

    # --- transport ------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[bytes, str]:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url + API + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as err:
            raise self._error(err) from None
        except urllib.error.URLError as err:
            reason = getattr(err.reason, "strerror", None) or str(err.reason)
            raise NodeUnreachableError(f"cannot reach the node at {self.url} ({reason})") from None
        except TimeoutError:
            raise NodeUnreachableError(
                f"cannot reach the node at {self.url} (no answer within {self.timeout:g} s)"
            ) from None
        except (OSError, ValueError) as err:  # connection reset, bad status line, ...
            raise NodeUnreachableError(f"cannot reach the node at {self.url} ({err})") from None

    @staticmethod
    def _error(err: urllib.error.HTTPError) -> NodeError:
        try:
            data = json.loads(err.read())
            code, message = str(data["error"]["code"]), str(data["error"]["message"])
        except (ValueError, KeyError, TypeError, OSError):
            code, message = f"http-{err.code}", str(err.reason)
        return NodeError(err.code, code, message)

    def get_json(self, path: str) -> Any:
        body, _ = self._request("GET", path)
        try:
            return json.loads(body)
        except ValueError:
            raise NodeError(200, "bad-answer", f"GET {path} did not answer JSON") from None

    def get_text(self, path: str) -> str:
        body, _ = self._request("GET", path)
        return body.decode("utf-8", "replace").strip()

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` on up to ``WORKERS`` threads, in order."""
        items = list(items)
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))

    # --- routes ---------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json("/info")
        return data

    def tip_height(self) -> int:
        return int(self.get_text("/blocks/tip/height"))

    def fee_estimates(self) -> dict[str, int]:
        data = self.get_json("/fee-estimates")
        return {str(k): int(v) for k, v in data.items()}

    def address_summary(self, address: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json(f"/address/{address}")
        return data

    def address_utxos(self, address: str) -> list[dict[str, Any]]:
        """Every unspent output of ``address``: the node answers in pages, followed here until
        an empty one (the page size is the node's business, so none is assumed)."""
        return self._paged_utxos(f"/address/{address}/utxo", MAX_UTXO_PAGES)

    def _paged_utxos(self, route: str, max_pages: int) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = []
        query = ""
        for _ in range(max_pages):
            page: list[dict[str, Any]] = self.get_json(f"{route}{query}")
            if not page:
                return data
            data.extend(page)
            cursor = f"?after={page[-1]['txid']}:{page[-1]['index']}"
            if cursor == query:
                raise NodeError(200, "bad-answer", "the node sent one page of outputs twice")
            query = cursor
        raise NodeError(200, "bad-answer", f"more than {max_pages} pages of unspent outputs")

    def address_txs(self, address: str, after_txid: str | None = None) -> list[dict[str, Any]]:
        query = "" if after_txid is None else "?after_txid=" + after_txid
        data: list[dict[str, Any]] = self.get_json(f"/address/{address}/txs{query}")
        return data

    def xpub_summary(self, xpub: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json(f"/xpub/{xpub}")
        return data

    def xpub_txs(self, xpub: str, after_txid: str | None = None) -> list[dict[str, Any]]:
        query = "" if after_txid is None else "?after_txid=" + after_txid
        data: list[dict[str, Any]] = self.get_json(f"/xpub/{xpub}/txs{query}")
        return data

    def xpub_utxos(self, xpub: str, max_pages: int = MAX_UTXO_PAGES) -> list[dict[str, Any]]:
        """Every unspent output of the account ``xpub``, its pages followed (as
        ``address_utxos``) up to ``max_pages``."""
        return self._paged_utxos(f"/xpub/{xpub}/utxo", max_pages)

    def tx(self, txid: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json(f"/tx/{txid}")
        return data

    def tx_status(self, txid: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json(f"/tx/{txid}/status")
        return data

    def tx_raw(self, txid: str) -> bytes:
        body, _ = self._request("GET", f"/tx/{txid}/raw")
        return body

    def outspends(self, txid: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.get_json(f"/tx/{txid}/outspends")
        return data

    def post_tx(self, raw: bytes) -> str:
        """Submit a serialized transaction; its txid (display hex) or ``NodeError``."""
        body, _ = self._request("POST", "/tx", raw, "application/msgpack")
        try:
            return str(json.loads(body)["txid"])
        except (ValueError, KeyError, TypeError):
            raise NodeError(200, "bad-answer", "POST /tx did not answer {txid}") from None
