"""The devnet toolkit's admin routes (SPEC 6): the node's clock, automine, clearing the mempool
and a scripted reorg, under ``/api/v1/admin/`` (the cookie's token, ``admin.admin_middleware``).

Job: ``GET``/``POST /admin/time`` (Core's ``setmocktime``: ``{"set": UNIX}``, ``{"advance": S}``
or ``{"reset": true}``), ``GET``/``POST /admin/automine`` (Anvil's modes ``off``, ``tx``,
``interval``), ``POST /admin/mempool/clear`` (everything, or ``txids`` with their descendants) and
``POST /admin/reorg`` (``depth``, ``drop``). Each handler refuses a network other than regtest
with 403 ``not-allowed`` before it reads anything, checks its JSON object field by field (400
with a sentence), makes one call to ``service.toolkit`` and answers its model of
``client.models``.

Invariants: every bound on a value is written here once (``node.api.openapi`` documents these
constants); what a value means against the chain (a depth deeper than the chain, a ``drop`` txid
the reorg would not disconnect) is the toolkit's to refuse, also with a 400. Left to others: what
the commands do (``node.toolkit``), running them on every node of a devnet (``tally-devnet``).
"""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from client import models as m
from client.models import API, AUTOMINE_MODES, AutomineMode
from node.api.http import ApiError, json_response, parse_hash, read_object
from node.api.routes import Api
from node.api.routes.admin import MAX_BLOCK_TIME
from node.interfaces import AutomineState, ClockState, NodeCommands

MAX_TIME = 4_102_444_800
"""The latest time ``set`` or ``advance`` may reach: 2100-01-01 (a header's time is a u32, which
ends in 2106)."""
MAX_ADVANCE = 10 * 365 * 86_400
"""The most one ``advance`` moves the clock: ten years, in seconds."""
MAX_REORG_DEPTH = 1_000
"""The most blocks one ``/admin/reorg`` replaces."""
MAX_TXIDS = 1_000
"""Txids one ``/admin/reorg`` ``drop`` or one ``/admin/mempool/clear`` ``txids`` lists at most."""


def regtest_only(service: NodeCommands) -> None:
    """403 ``not-allowed`` unless the network offers devnet commands (regtest, as ``generate``)."""
    if not service.params.allow_generate:
        raise ApiError(
            403,
            f"the devnet toolkit is for regtest, not {service.params.name}",
            "not-allowed",
        )


def whole_number(data: dict[str, Any], name: str, low: int, high: int) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(400, f"{name} must be a whole number from {low:,} to {high:,}")
    return value


def txid_list(data: dict[str, Any], name: str) -> list[bytes] | None:
    """``data[name]``: a list of at most ``MAX_TXIDS`` txids (display hex); ``None`` if absent."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_TXIDS:
        raise ApiError(400, f"{name} must be a list of at most {MAX_TXIDS:,} txids")
    if not all(isinstance(t, str) for t in value):
        raise ApiError(400, f"{name} must hold txids (64 hex digits)")
    return [parse_hash(t, "txid") for t in value]


def optional_address(data: dict[str, Any]) -> str | None:
    address = data.get("address")
    if address is not None and not isinstance(address, str):
        raise ApiError(400, "address must be a string", "bad-address")
    return address


def clock_answer(state: ClockState) -> web.Response:
    return json_response(m.NodeTime(now=state.now, offset=state.offset))


def automine_answer(state: AutomineState) -> web.Response:
    return json_response(
        m.Automine(mode=state.mode, interval=state.interval, address=state.address)
    )


def add(r: web.RouteTableDef, api: Api) -> None:
    service = api.service

    @r.get(f"{API}/admin/time")
    async def get_time(request: web.Request) -> web.Response:
        regtest_only(service)
        return clock_answer(service.toolkit.clock_state())

    @r.post(f"{API}/admin/time")
    async def set_time(request: web.Request) -> web.Response:
        regtest_only(service)
        data = await read_object(request)
        given = [k for k in ("set", "advance", "reset") if k in data]
        if len(given) != 1:
            raise ApiError(400, 'give one of "set" (Unix seconds), "advance" (seconds), "reset"')
        toolkit = service.toolkit
        if given == ["set"]:
            unix = whole_number(data, "set", service.params.genesis_time, MAX_TIME)
            return clock_answer(await toolkit.set_time(unix))
        if given == ["advance"]:
            seconds = whole_number(data, "advance", 1, MAX_ADVANCE)
            if toolkit.clock_state().now + seconds > MAX_TIME:
                raise ApiError(400, f"advance would take the clock past {MAX_TIME:,} (2100)")
            return clock_answer(await toolkit.advance_time(seconds))
        if data["reset"] is not True:
            raise ApiError(400, "reset must be true (back to the wall clock)")
        return clock_answer(await toolkit.reset_time())

    @r.get(f"{API}/admin/automine")
    async def get_automine(request: web.Request) -> web.Response:
        regtest_only(service)
        return automine_answer(service.toolkit.automine_state())

    @r.post(f"{API}/admin/automine")
    async def set_automine(request: web.Request) -> web.Response:
        regtest_only(service)
        data = await read_object(request)
        mode = data.get("mode")
        if mode not in AUTOMINE_MODES:
            raise ApiError(400, f"mode must be one of {', '.join(AUTOMINE_MODES)}")
        interval = data.get("interval")
        if mode == "interval" and interval is not None:
            if (
                isinstance(interval, bool)
                or not isinstance(interval, int | float)
                or not 0 < interval <= MAX_BLOCK_TIME
            ):
                raise ApiError(
                    400, f"interval must be a number of seconds above 0, at most {MAX_BLOCK_TIME:,}"
                )
        elif mode != "interval" and interval is not None:
            raise ApiError(400, 'interval is for mode "interval" only')
        state = await service.toolkit.set_automine(
            cast(AutomineMode, mode),
            optional_address(data),
            None if interval is None else float(interval),
        )
        return automine_answer(state)

    @r.post(f"{API}/admin/mempool/clear")
    async def clear_mempool(request: web.Request) -> web.Response:
        regtest_only(service)
        data = await read_object(request)
        removed = await service.toolkit.clear_mempool(txid_list(data, "txids"))
        return json_response(m.MempoolCleared(removed=removed))

    @r.post(f"{API}/admin/reorg")
    async def reorg(request: web.Request) -> web.Response:
        regtest_only(service)
        data = await read_object(request)
        depth = whole_number(data, "depth", 1, MAX_REORG_DEPTH)
        drop = txid_list(data, "drop") or []
        result = await service.toolkit.reorg(depth, drop, optional_address(data))
        return json_response(
            m.Reorged(
                old_tip=result.old_tip[::-1].hex(),
                new_tip=result.new_tip[::-1].hex(),
                height=result.height,
                disconnected=[h[::-1].hex() for h in result.disconnected],
                dropped=[t[::-1].hex() for t in result.dropped],
            )
        )
