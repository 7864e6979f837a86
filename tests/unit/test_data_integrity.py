"""The third-party vectors in tests/data are complete and unaltered.

Every file listed in ``tests/data/SHA256SUMS`` must exist with that checksum (one test per file,
so a failure names it), nothing unlisted may sit beside them, and the vectors' own self-check
script (``tests/data/tools/selfcheck.py``, from the vectors' upstream folder) must pass.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VECTORS

SUMS = VECTORS / "SHA256SUMS"


def _listed() -> dict[str, str]:
    listed: dict[str, str] = {}
    for line in SUMS.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            listed[name.removeprefix("./")] = digest
    return listed


LISTED = _listed()


def test_the_checksum_list_is_not_empty() -> None:
    assert len(LISTED) >= 30
    assert "headers/mainnet_0_9999_headers.txt" in LISTED


@pytest.mark.parametrize("name", sorted(LISTED))
def test_vector_file_matches_its_checksum(name: str) -> None:
    path = VECTORS / name
    assert path.is_file(), f"tests/data/{name} is missing"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == LISTED[name], f"tests/data/{name} was altered (sha256 {digest})"


def test_no_unlisted_file_beside_the_vectors() -> None:
    present = {
        str(p.relative_to(VECTORS))
        for p in VECTORS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert present - set(LISTED) == {"SHA256SUMS"}


def test_the_vectors_self_check_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(VECTORS / "tools" / "selfcheck.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "OK" in done.stdout
