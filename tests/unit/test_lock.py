"""The virtual environment holds exactly what the lock files pin.

``scripts/_venv.sh`` installs ``requirements/test.lock`` (runtime and test dependencies, with
hashes) into ``.venv``; ``requirements/runtime.lock`` is the plain install at the same versions.
A package installed at another version, or one the lock does not name, fails here.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(path: Path) -> dict[str, str]:
    """Name -> version of every pin in a lock file whose marker holds here."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        found = PIN.match(line)
        if found is None:
            continue
        name, version, marker = found.groups()
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = version
    return pins


def installed() -> dict[str, str]:
    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]
    }


def test_the_lock_files_pin_with_hashes() -> None:
    for name in ("test.lock", "runtime.lock"):
        text = (ROOT / "requirements" / name).read_text()
        pins = read_lock(ROOT / "requirements" / name)
        assert len(pins) >= 20, name
        assert text.count("--hash=sha256:") >= len(pins), name
        assert ">=" not in text and "~=" not in text, name


def test_the_environment_runs_from_the_projects_venv() -> None:
    assert Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()


def test_installed_versions_equal_the_lock() -> None:
    pins = read_lock(ROOT / "requirements" / "test.lock")
    have = installed()
    wrong = {name: (want, have.get(name)) for name, want in pins.items() if have.get(name) != want}
    assert wrong == {}, f"installed differs from requirements/test.lock: {wrong}"
    unpinned = set(have) - set(pins) - {"tally"}
    assert unpinned == set(), f"installed but not in requirements/test.lock: {sorted(unpinned)}"


def test_the_runtime_lock_agrees_with_the_test_lock() -> None:
    test = read_lock(ROOT / "requirements" / "test.lock")
    runtime = read_lock(ROOT / "requirements" / "runtime.lock")
    assert {n: v for n, v in runtime.items() if test.get(n) != v} == {}
    for needed in ("msgpack", "aiohttp", "plyvel", "coincurve", "cryptography", "bip32"):
        assert needed in runtime
