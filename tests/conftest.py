"""Test configuration: where the third-party vectors are, and shared fixtures.

The vectors are part of the project, in ``tests/data/`` (copied from their upstream sources,
listed with licences in ``tests/data/SOURCES.md`` and checksummed in ``tests/data/SHA256SUMS``),
so a clone anywhere runs every test. ``tests/unit/test_data_integrity.py`` checks every file
against its checksum: a missing or altered file fails a test that names it.
"""

from __future__ import annotations

import os
from pathlib import Path

# Every access to the node's state from a thread that does not own it raises (node.state), in
# this process and in every node process a test starts (they inherit the environment). Set
# before any test module imports the node, since classes decide when they are defined.
os.environ["TALLY_CHECK_THREADS"] = "1"

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vectors folder; a missing folder is an error, not a skip."""
    if not (VECTORS / "SHA256SUMS").is_file():
        raise FileNotFoundError(f"test vectors not found at {VECTORS}: the clone is incomplete")
    return VECTORS
