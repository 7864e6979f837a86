"""The devnet toolkit's admin routes for snapshots and partitions (SPEC 6), regtest only.

Job: ``POST /admin/snapshot {name}`` (copy the node's whole state), ``GET /admin/snapshots``,
``POST /admin/revert {name}`` (back to a snapshot, which is kept), ``POST /admin/partition
{peers}`` (refuse those peers both ways) and ``POST /admin/heal`` (lift every refusal). Each
parses its body field by field (400 with a sentence), calls one command of the service and
answers a model of ``client.models``.

Invariants: behind the admin token like every ``/api/v1/admin/`` route (401 without it); on a
network other than regtest every one answers 403 ``not-allowed`` before reading its body
(``regtest_only``, the network check of ``generate``); an unknown snapshot is a 404 and
changes nothing; a snapshot that cannot be written (disk full) or opened is 400
``snapshot-failed``, and the node goes on as it was. Names and limits are ``client.models``'
(``SNAPSHOT_NAME_PATTERN``, ``MAX_SNAPSHOTS``, ``MAX_PARTITIONED``). Left to others: what the
commands do (``NodeService``, ``node.snapshots``, ``node.p2p.manager``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from client import models as m
from client.models import (
    API,
    MAX_PARTITIONED,
    MAX_SNAPSHOTS,
    PEER_URL_PATTERN,
    SNAPSHOT_NAME_PATTERN,
)
from node.api.http import ApiError, json_response, read_object
from node.api.routes import Api
from node.snapshots import (
    SnapshotFailedError,
    SnapshotLimitError,
    UnknownSnapshotError,
    valid_name,
)

PEER_URL = re.compile(PEER_URL_PATTERN)
"""What a partition's peer URL must look like (the pattern the document gives)."""

if TYPE_CHECKING:
    from node.interfaces import NodeCommands


def regtest_only(service: NodeCommands) -> None:
    """403 ``not-allowed`` unless the network offers devnet commands (regtest, as ``generate``)."""
    if not service.params.allow_generate:
        raise ApiError(
            403, f"the devnet toolkit is for regtest, not {service.params.name}", "not-allowed"
        )


def _name(data: dict[str, object]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not valid_name(name):
        raise ApiError(400, f"name must match {SNAPSHOT_NAME_PATTERN}")
    return name


def add(r: web.RouteTableDef, api: Api) -> None:
    service = api.service

    @r.post(f"{API}/admin/snapshot")
    async def snapshot(request: web.Request) -> web.Response:
        regtest_only(service)
        name = _name(await read_object(request))
        try:
            info = await service.take_snapshot(name)
        except SnapshotLimitError as err:
            raise ApiError(400, f"{err} (at most {MAX_SNAPSHOTS})", "too-many-snapshots") from None
        except SnapshotFailedError as err:
            raise ApiError(400, str(err), "snapshot-failed") from None
        return json_response(m.Snapshot(info.name, info.height, info.best_hash[::-1].hex()))

    @r.get(f"{API}/admin/snapshots")
    async def snapshots(request: web.Request) -> web.Response:
        regtest_only(service)
        infos = await service.list_snapshots()
        return json_response(
            [m.SnapshotListed(i.name, i.height, i.best_hash[::-1].hex(), i.created) for i in infos]
        )

    @r.post(f"{API}/admin/revert")
    async def revert(request: web.Request) -> web.Response:
        regtest_only(service)
        name = _name(await read_object(request))
        try:
            info = await service.revert(name)
        except UnknownSnapshotError:
            raise ApiError(404, f"no snapshot is named {name!r}") from None
        except SnapshotFailedError as err:
            raise ApiError(400, str(err), "snapshot-failed") from None
        return json_response(m.Snapshot(info.name, info.height, info.best_hash[::-1].hex()))

    @r.post(f"{API}/admin/partition")
    async def partition(request: web.Request) -> web.Response:
        regtest_only(service)
        peers = (await read_object(request)).get("peers")
        if (
            not isinstance(peers, list)
            or not 1 <= len(peers) <= MAX_PARTITIONED
            or not all(isinstance(p, str) and PEER_URL.fullmatch(p) for p in peers)
        ):
            raise ApiError(
                400, f"peers must be a list of 1 to {MAX_PARTITIONED} http:// URLs of peers"
            )
        return json_response(m.Partitioned(partitioned=service.partition(peers)))

    @r.post(f"{API}/admin/heal")
    async def heal(request: web.Request) -> web.Response:
        regtest_only(service)
        healed, reconnected = await service.heal()
        return json_response(m.Healed(healed=healed, reconnected=reconnected))
