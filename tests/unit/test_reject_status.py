"""A refused transaction or block gets its HTTP status from its reject category
(``node.api.http.REJECT_STATUS``), one of SPEC 3.5's error statuses, with its reject code."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consensus import ValidationError
from consensus.errors import CATEGORIES, RejectCategory
from node.api.app import SERVICE, errors_middleware
from node.api.http import REJECT_STATUS

SPEC_ERROR_STATUSES = {400, 401, 403, 404, 413, 415, 429}


def test_every_category_has_a_status_the_spec_allows() -> None:
    assert set(REJECT_STATUS) == set(RejectCategory)
    assert set(REJECT_STATUS.values()) <= SPEC_ERROR_STATUSES


def one_code_per_category() -> list[str]:
    seen: dict[RejectCategory, str] = {}
    for code, category in sorted(CATEGORIES.items()):
        seen.setdefault(category, code)
    return [seen[c] for c in RejectCategory]


@pytest.mark.parametrize("code", one_code_per_category())
def test_the_middleware_answers_a_refusal_with_its_category_status(code: str) -> None:
    async def refuse(request: web.Request) -> web.Response:
        raise ValidationError(code, "refused for the test")

    async def scenario() -> tuple[int, Any]:
        metrics = SimpleNamespace(
            request_seconds=SimpleNamespace(
                labels=lambda *a: SimpleNamespace(observe=lambda s: None)
            )
        )
        app = web.Application(middlewares=[errors_middleware])
        app[SERVICE] = SimpleNamespace(metrics=metrics)  # type: ignore[misc]
        app.router.add_post("/x", refuse)
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/x")
            return response.status, await response.json()

    status, body = asyncio.run(scenario())
    assert status == REJECT_STATUS[CATEGORIES[code]]
    assert body == {"error": {"code": code, "message": "refused for the test"}}
