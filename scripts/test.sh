#!/usr/bin/env bash
# The whole test suite, from a fresh clone: makes .venv if missing, installs Tally with its test
# extra (again only when pyproject.toml changed), then runs ruff, mypy --strict and pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -k merkle`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.tally-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing tally[test] into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    echo "$want" > "$stamp"
fi

# The browser tests drive the system Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing chromium (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "!! /usr/bin/chromium is missing and this is not root: the browser tests will fail" >&2
    fi
fi

echo "== ruff check"
.venv/bin/ruff check consensus node wallet tests scripts
echo "== ruff format --check"
.venv/bin/ruff format --check consensus node wallet tests scripts
echo "== mypy --strict consensus wallet node/storage"
.venv/bin/mypy --strict consensus wallet node/storage
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
