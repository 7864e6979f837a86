"""A clone of the project runs its vector tests with nothing outside the clone.

The project is cloned (``git clone`` of the committed tree, as a new user gets it) into a
temporary folder that has no ``shared/`` folder anywhere above it, and every test that reads the
third-party vectors runs there: all must pass and none may be skipped. The clone's own sources
come first on ``sys.path`` (pytest's ``pythonpath = ["."]``), so it is the clone that is tested;
the interpreter is this project's ``.venv``, which the lock file installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTOR_TESTS = [
    "tests/unit/test_data_integrity.py",
    "tests/unit/test_vectors_headers.py",
    "tests/unit/test_vectors_base58.py",
    "tests/unit/test_vectors_merkle.py",
    "tests/unit/test_vectors_pow.py",
    "tests/unit/test_vectors_ecdsa.py",
    "tests/unit/test_wallet_keys.py",
]


@pytest.mark.slow
def test_a_clone_with_no_shared_folder_runs_every_vector_test(tmp_path: Path) -> None:
    assert shutil.which("git"), "git is needed to clone the project"
    clone = tmp_path / "tally"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        check=True,
        timeout=120,
    )
    assert not any((parent / "shared").exists() for parent in clone.parents)
    assert (clone / "tests" / "data" / "SHA256SUMS").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", *VECTOR_TESTS],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    assert f"rootdir: {clone}" in done.stdout, tail
    assert " passed" in done.stdout and "skipped" not in done.stdout, tail
    assert "error" not in done.stdout.splitlines()[-1], tail
