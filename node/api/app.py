"""The HTTP API's application (SPEC 3.5): middlewares, body limit and routes, assembled.

Job: ``make_app`` builds the aiohttp application of a node: the routes under ``/api/v1/``
(``node.api.routes``, one module per resource), the admin routes' token check, ``/metrics``,
``/`` and the explorer's files, and the ``/p2p/`` routes (``node.p2p.routes``). Every error has
the shape ``{"error": {"code", "message"}}`` (``errors_middleware``): the reject code for a
refused transaction or block, otherwise the HTTP reason as a slug (``bad-request``,
``not-found``, ``method-not-allowed``, ``unauthorized``, ``forbidden``, ``payload-too-large``,
``uri-too-long``, ``unsupported-media-type``); a wrong method is a 405 with aiohttp's ``Allow``
header. Bad input never produces a 500: anything unexpected is logged and answered as one,
which the tests treat as a bug.

Limits: request bodies are capped at ``MAX_BODY`` bytes (``node.api.http``; 413 beyond); each
route module owns its parameters' limits. Before any of that, ``node.api.guards`` refuses a URL
over 8,190 bytes (414), a foreign ``Host`` or ``Origin`` (403) and a body that is neither JSON
nor msgpack (415), on every route, P2P included; what aiohttp's parser itself refuses is
answered in the same shape by ``node.api.parser_errors``. Left to others: the handlers
(``node.api.routes``), parsing and answers (``node.api.http``), the document
(``node.api.openapi``; served here, as it describes the whole application).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from client.models import API
from consensus import ValidationError
from node.api.accounts import Accounts
from node.api.guards import HostPolicy, make_guards_middleware
from node.api.http import MAX_BODY, REASONS, REJECT_STATUS, ApiError, error_response
from node.api.openapi import openapi_json
from node.api.routes import (
    Api,
    addresses,
    admin,
    blocks,
    events,
    mempool,
    node,
    snapshots,
    toolkit,
    txs,
)
from node.api.views import NotFoundError, Views
from node.interfaces import VERSION, CommandError, NodeCommands
from node.storage import StorageError

__all__ = ["API", "MAX_BODY", "SERVICE", "error_response", "make_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE: web.AppKey[NodeCommands] = web.AppKey("service")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure in the documented error shape, and request latency into the metrics."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message)
    except ValidationError as err:
        return error_response(REJECT_STATUS[err.category], err.code, err.message)
    except CommandError as err:
        return error_response(400, err.code, err.message)
    except NotFoundError as err:
        return error_response(404, "not-found", str(err))
    except StorageError:
        # The node is stopping (NodeService.fail); nothing was half-written.
        return error_response(503, "unavailable", "the node's storage failed; it is stopping")
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = REASONS.get(err.status, "error")
        # A 405 keeps aiohttp's ``Allow`` (the methods the route serves; RFC 9110 15.5.6).
        allow = {"Allow": err.headers["Allow"]} if "Allow" in err.headers else None
        return error_response(err.status, code, err.reason, allow)
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "internal-error", "unexpected error; see the node's log")
    finally:
        service = request.app[SERVICE]
        service.metrics.request_seconds.labels(request.method, name).observe(
            time.perf_counter() - started
        )


def make_app(
    service: NodeCommands,
    views: Views,
    more_routes: Sequence[Callable[[web.Application], None]] = (),
) -> web.Application:
    """The HTTP application over ``service`` (its commands and snapshots, ``node.interfaces``)
    and ``views`` (the read models, run through ``service.read``); ``more_routes`` add what
    lives elsewhere (the composition root adds P2P's)."""
    s = service.settings
    guards = make_guards_middleware(
        HostPolicy.for_bind(s.bind, s.port, s.allow_host), error_response
    )
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[errors_middleware, guards, admin.admin_middleware(service)],
    )
    app[SERVICE] = service
    # queries: bounded in number ahead of the node's own work
    api = Api(service, views, Accounts(views), service.read, VERSION)
    r = web.RouteTableDef()
    for routes in (node, blocks, txs, addresses, mempool, events, admin, toolkit, snapshots):
        routes.add(r, api)

    @r.get(f"{API}/openapi.json")
    async def openapi(request: web.Request) -> web.Response:
        """This application's description (``node.api.openapi``), for the node's network."""
        return web.Response(
            body=openapi_json(service.params), content_type="application/json", charset="utf-8"
        )

    app.add_routes(r)
    for add in more_routes:
        add(app)
    return app
