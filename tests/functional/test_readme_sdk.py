"""The README's example of testing an application with ``client.testing`` runs as written
(issue 20, acceptance 7).

The ``python`` block under "Test an application against a devnet" is copied into a fresh folder
with nothing of this project's test set-up (no conftest), and run by pytest in a new process:
the ``devnet`` fixture comes from the plugin the installed package registers (``pytest11``), and
it starts a real devnet of real ``tally-node`` processes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Test an application against a devnet", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md has no example under 'Test an application against a devnet'"
    return match.group(1)


def test_the_example_is_short() -> None:
    lines = [line for line in readme_example().splitlines() if line.strip()]
    assert len(lines) <= 10, lines


@pytest.mark.timeout(300)
def test_the_readme_example_passes_with_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(readme_example())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_DEVNET", "PYTEST"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_a_failing_application_test_fails(tmp_path: Path) -> None:
    """The plugin is not a test that cannot fail: a wrong expectation about the devnet fails."""
    wrong = readme_example().replace("250_000_000", "250_000_001")
    (tmp_path / "test_app.py").write_text(wrong)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 1, done.stdout[-4000:]
    assert "1 failed" in done.stdout
