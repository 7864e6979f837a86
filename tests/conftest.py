"""Test configuration: where the third-party vectors are, and shared fixtures.

The vectors live beside the project in ``../shared/vectors`` (CI has them there too); the
``TALLY_VECTORS`` environment variable points elsewhere. They are read, never copied.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(os.environ.get("TALLY_VECTORS", ROOT.parent / "shared" / "vectors"))


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vectors folder; a missing folder is an error, not a skip."""
    if not VECTORS.is_dir():
        raise FileNotFoundError(f"test vectors not found at {VECTORS} (set TALLY_VECTORS)")
    return VECTORS
