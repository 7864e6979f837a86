"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fake_peer import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Nodes started through it are always stopped, whatever the test did."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
