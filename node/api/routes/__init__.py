"""The HTTP API's routes, one module per resource (SPEC 3.5), each registered by ``add``.

Job: ``blocks`` (the chain's blocks and tip), ``txs`` (transactions, submitting them),
``addresses`` (addresses and accounts), ``mempool`` (the mempool and fees), ``node`` (the node
itself: info, search, UTXO set, peers, this API's description, metrics, the explorer's files),
``admin`` (operator commands behind the cookie's token) and ``toolkit`` (the devnet toolkit's
admin routes: clock, automine, mempool clear, reorg; regtest only). Every handler is thin: parse the
request (``node.api.http``), call one view or service method (queries on the state thread
through ``Api.call``), answer with a model of ``client.models``.

Invariants: each module owns the limits of its routes' parameters (``node.api.openapi`` imports
them from here); no handler answers a 500 for any input (refusals are ``ApiError`` and the
errors the middleware of ``node.api.app`` shapes). Left to others: middlewares, body size and
guards (``node.api.app``, ``node.api.guards``), the ``/p2p/`` routes (``node.p2p.routes``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.api.accounts import Accounts
    from node.api.views import Views
    from node.interfaces import NodeCommands


@dataclass(frozen=True)
class Api:
    """What the handlers reach: the service, its views and accounts, ``call`` (a query on the
    state thread, bounded in number ahead of the node's own work) and the node's version. Handed
    in by ``node.api.app``, so that no route module imports ``node.service``."""

    service: NodeCommands
    views: Views
    accounts: Accounts
    call: Callable[..., Awaitable[Any]]
    version: str
