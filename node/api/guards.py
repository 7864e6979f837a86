"""Guards of the HTTP server: URL size, cross-site and DNS-rebinding requests (SPEC 3.5; issue
16 defect 10, issue 17).

Job: decide, before any handler runs, whether a request may reach the node at all. A web page
in the user's browser can send requests to a node on 127.0.0.1: a "simple" cross-site POST
(``text/plain``, no preflight) reaches the handlers, and a page whose own name resolves to
127.0.0.1 (DNS rebinding) can even read the answers. Four checks, in this order, each answered
in the API's error shape by ``guards_middleware``:

1. Size (414 ``uri-too-long``): the request target (path and query, as sent) is at most
   ``MAX_URL_BYTES`` bytes. aiohttp's parser is told to read lines of up to ``PARSER_MAX_LINE``
   bytes, twice that, so the documented limit holds here, exactly, whichever parser is in use
   (the C one counts the target, the pure-Python one the whole line). A longer line the parser
   refuses itself; ``node.api.parser_errors`` answers that in the same shape, and a header
   field over ``MAX_HEADER_BYTES`` (431) and any request it cannot read (400).
2. ``Host`` (403 ``forbidden``): the request's ``Host`` names this node: the address it listens
   on with its port; ``localhost``, ``127.0.0.1`` or ``[::1]`` when it listens on loopback; any
   IP literal when it listens on a wildcard address (``0.0.0.0``, ``::``: every address of the
   machine is its own, and a page can only rebind a *name*); or a name given with
   ``--allow-host``. A missing port means port 80. A missing ``Host`` is refused.
3. ``Origin`` (403 ``forbidden``): a state-changing request (POST, PUT, DELETE, PATCH), or a
   WebSocket upgrade (a GET a page can make cross-site and then read: cross-site WebSocket
   hijacking, as of ``/api/v1/events``), that carries an ``Origin`` must come from the node's
   own origin: ``http://`` or ``https://`` with
   the same host and port as the (already checked) ``Host``. Browsers send ``Origin`` on
   same-origin POSTs too, so the explorer's own requests pass; command-line clients and peers
   send none.
4. ``Content-Type`` (415 ``unsupported-media-type``): a request with a body declares exactly
   ``application/json`` (a ``charset=utf-8`` parameter allowed) or ``application/msgpack`` (no
   parameter); on the P2P routes (``/p2p/``, msgpack only) exactly ``application/msgpack``.
   Neither can be sent cross-site without a CORS preflight, which this server never
   grants (it sends no ``Access-Control-Allow-*`` header).

Invariants: the checks read the request line and headers only (no body is read before they
pass); they cost O(1) per request (the size check reads at most ``PARSER_MAX_LINE`` bytes, all
that the parser lets through); the allowed set is fixed when the server starts. This module
leaves authentication (admin token), body limits and parsing to ``node.api.app``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # aiohttp is imported where the middleware is made: ``node.config`` (and
    # with it every client command) uses the name rules here without loading the server.
    from aiohttp import web
    from aiohttp.typedefs import Middleware

JSON = "application/json"
MSGPACK = "application/msgpack"
P2P_PREFIX = "/p2p/"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names of wildcard binds, not a bind

MAX_URL_BYTES = 8190
"""The longest request target answered (bytes, path and query as sent): aiohttp's own default
line limit, which clients and proxies already keep to (docs/API.md); 414 beyond."""
MAX_HEADER_BYTES = 8190
"""The longest header field (name and value) aiohttp's parser takes: its default; 431 beyond."""
PARSER_MAX_LINE = 2 * MAX_URL_BYTES
"""aiohttp's ``max_line_size`` for the server: room for the request line around a target of
``MAX_URL_BYTES`` under either parser, still bounded; anything longer the parser refuses."""

_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class GuardError(Exception):
    """A request refused by a guard: ``status`` 403, 414 or 415, ``code`` the error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def normalize_host_name(text: str) -> str:
    """A host name or IP literal as compared here: lower case, IPv6 without brackets and in
    its compressed form. ``ValueError`` if it is neither a DNS name nor an IP address."""
    name = text.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
        return str(ipaddress.IPv6Address(name))
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if len(name) > 253 or not _NAME.fullmatch(name):
        raise ValueError(f"{text!r} is not a host name or IP address")
    return name.rstrip(".")


def split_authority(authority: str) -> tuple[str, int | None]:
    """``host[:port]`` (``[v6][:port]`` for IPv6) into a normalized name and a port (None when
    absent); ``ValueError`` when malformed."""
    text = authority.strip()
    port_text: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unclosed [")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("junk after ]")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError("an IPv6 address in a Host must be in brackets")
    else:
        host = text
    port: int | None = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise ValueError("bad port")
        port = int(port_text)
    return normalize_host_name(host), port


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` values name this node (see the module docstring)."""

    port: int
    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def for_bind(cls, bind: str, port: int, allow: Iterable[str] = ()) -> HostPolicy:
        names = {normalize_host_name(a) for a in allow}
        wildcard = bind.strip().strip("[]") in WILDCARDS
        if wildcard:
            names |= LOOPBACK_NAMES
        else:
            own = normalize_host_name(bind)
            names.add(own)
            if _is_loopback(own):
                names |= LOOPBACK_NAMES
        return cls(port, frozenset(names), any_ip=wildcard)

    def allows(self, host: str, port: int | None) -> bool:
        if (80 if port is None else port) != self.port:
            return False
        return host in self.names or (self.any_ip and _is_ip(host))


def check_target(raw_path: str) -> None:
    """The request target, as sent, is at most ``MAX_URL_BYTES`` bytes; ``GuardError`` 414 if
    not. (aiohttp decodes it with ``surrogateescape``: encoding back gives the bytes sent.)"""
    size = len(raw_path.encode("utf-8", "surrogateescape"))
    if size > MAX_URL_BYTES:
        raise GuardError(414, "uri-too-long", url_too_long_message(size))


def url_too_long_message(size: int | None = None) -> str:
    what = "the URL" if size is None else f"the URL ({size:,} bytes)"
    return f"{what} is longer than the limit of {MAX_URL_BYTES:,} bytes (path and query)"


def check_host(policy: HostPolicy, header: str | None) -> tuple[str, int | None]:
    """The request's ``Host``, parsed, if it names this node; ``GuardError`` 403 otherwise."""
    if not header:
        raise GuardError(403, "forbidden", "a request needs a Host header naming this node")
    try:
        host, port = split_authority(header)
    except ValueError:
        raise GuardError(403, "forbidden", f"malformed Host {header[:100]!r}") from None
    if not policy.allows(host, port):
        raise GuardError(
            403,
            "forbidden",
            f"Host {header[:100]!r} does not name this node "
            "(a DNS-rebinding guard: start the node with --allow-host NAME to allow a name)",
        )
    return host, port


def is_websocket_upgrade(upgrade: str | None) -> bool:
    """Whether an ``Upgrade`` header asks for a WebSocket (as aiohttp decides it)."""
    return (upgrade or "").strip().lower() == "websocket"


def check_origin(
    method: str, origin: str | None, host: tuple[str, int | None], websocket: bool = False
) -> None:
    """A state-changing request or a WebSocket upgrade (``websocket``) with an ``Origin``
    must come from the node's own origin."""
    if (method not in STATE_CHANGING and not websocket) or origin is None:
        return
    own_host, own_port = host
    refused = GuardError(
        403,
        "forbidden",
        f"Origin {origin[:100]!r} is not this node's own: cross-site requests are refused",
    )
    try:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or parts.path or parts.query:
            raise refused
        name, port = split_authority(parts.netloc)
    except ValueError:
        raise refused from None
    default = 80 if parts.scheme == "http" else 443
    if name != own_host or (port or default) != (own_port or 80):
        raise refused


def check_content_type(header: str | None, p2p: bool = False) -> None:
    """A body's declared type is exactly JSON (``charset=utf-8`` allowed) or msgpack; on a P2P
    route (``p2p``), which speaks only msgpack, exactly msgpack."""
    text = (header or "").strip()
    main, _, params = text.partition(";")
    main = main.strip().lower()
    params = params.strip().lower().replace(" ", "")
    if main == JSON and params in ("", "charset=utf-8", 'charset="utf-8"') and not p2p:
        return
    if main == MSGPACK and not params:
        return
    wanted = MSGPACK if p2p else f"{JSON} or {MSGPACK}"
    raise GuardError(415, "unsupported-media-type", f"a body must be {wanted}, not {text[:100]!r}")


def make_guards_middleware(
    policy: HostPolicy, respond: Callable[[int, str, str], web.StreamResponse]
) -> Middleware:
    """The middleware running the four checks before any handler (and before the admin
    token check); ``respond(status, code, message)`` builds the error answer."""
    from aiohttp import web

    @web.middleware
    async def guards_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            check_target(request.raw_path)
            host = check_host(policy, request.headers.get("Host"))
            websocket = is_websocket_upgrade(request.headers.get("Upgrade"))
            check_origin(request.method, request.headers.get("Origin"), host, websocket)
            if request.body_exists:
                p2p = request.path.startswith(P2P_PREFIX)
                check_content_type(request.headers.get("Content-Type"), p2p)
        except GuardError as err:
            return respond(err.status, err.code, err.message)
        return await handler(request)

    return guards_middleware
