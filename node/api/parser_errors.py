"""Requests aiohttp's HTTP parser refuses, answered in the API's error shape (issue 17).

Job: aiohttp reads the request line and headers before any middleware runs, and answers what it
cannot read itself, in ``RequestHandler.handle_error``: a plain-text 400 and an ERROR with a
traceback on ``aiohttp.server``. ``ApiRequestHandler`` overrides that one method for parse
errors (``HttpProcessingError`` with a 4xx status) and answers with ``error_response``:

- 414 ``uri-too-long``: a request line over the server's ``max_line_size``
  (``PARSER_MAX_LINE``; shorter targets over ``MAX_URL_BYTES`` are refused by the guards
  middleware, with the same code);
- 431 ``request-header-fields-too-large``: a header field over ``max_field_size``
  (``MAX_HEADER_BYTES``);
- 400 ``bad-request``: anything else it cannot parse (a malformed line, too many headers, ...).

The connection is then closed, as aiohttp closes it (its parser stopped mid-request), and the
log gets one debug line, ``bad request from <peer>: <status> <what>`` (the client's fault, not
the operator's: the same line as ``node.cli.BadRequestFilter`` makes of aiohttp's own). Any
other error (a 500, a timeout) goes to aiohttp's handling unchanged.

Which limit a ``LineTooLong`` hit is in its ``args[1]``; the two limits differ (a unit test
holds them apart), so it tells a request line from a header field. (The pure-Python parser, not
the one installed, also applies ``max_line_size`` to a header still arriving: such a header,
over 16 KB, would be answered 414.)

``node.p2p.listener.GuardedSite`` makes one ``ApiRequestHandler`` per accepted connection.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from node.api.guards import MAX_HEADER_BYTES, url_too_long_message
from node.api.http import error_response

log = logging.getLogger(__name__)


def parse_error_answer(exc: HttpProcessingError, max_field_size: int) -> tuple[int, str, str]:
    """The status, code and message for a request the parser refused with ``exc``."""
    if isinstance(exc, LineTooLong):
        if len(exc.args) > 1 and exc.args[1] == max_field_size:
            return (
                431,
                "request-header-fields-too-large",
                f"a header field is longer than the limit of {MAX_HEADER_BYTES:,} bytes",
            )
        return 414, "uri-too-long", url_too_long_message()
    what = " ".join(str(exc.message).split())[:200]
    return 400, "bad-request", f"the request is not valid HTTP/1.1: {what}"


class ApiRequestHandler(web.RequestHandler):
    """aiohttp's protocol for one connection, with parse errors answered as the API's errors."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or not 400 <= status < 500:
            return super().handle_error(request, status, exc, message)
        status, code, text = parse_error_answer(exc, self.max_field_size)
        log.debug("bad request from %s: %d %s", request.remote, status, text)
        if request.writer.output_size > 0:  # as aiohttp: a begun answer cannot be replaced
            raise ConnectionError("an answer was begun; cannot send the error instead")
        response = error_response(status, code, text)
        response.force_close()
        return response
