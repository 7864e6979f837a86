#!/usr/bin/env bash
# The whole test suite, from a fresh clone: makes .venv if missing, installs Tally with its test
# extra (again only when pyproject.toml changed), then runs ruff, mypy --strict and pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -k merkle`.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="[test]"
. scripts/_venv.sh

# The browser tests drive the system Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing chromium (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "!! /usr/bin/chromium is missing and this is not root: the browser tests will fail" >&2
    fi
fi

# The multi-host test (tests/integration/test_multihost.py) builds network namespaces with iproute2.
if ! command -v ip >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing iproute2 (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
    else
        echo "!! ip (iproute2) is missing and this is not root: the multi-host test will fail" >&2
    fi
fi

# The QR tests decode with independent tools: zbarimg (zbar-tools) and rsvg-convert (librsvg2-bin).
missing=()
command -v zbarimg >/dev/null || missing+=(zbar-tools)
command -v rsvg-convert >/dev/null || missing+=(librsvg2-bin)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing ${missing[*]} (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "!! ${missing[*]} missing and this is not root: the QR tests will fail" >&2
    fi
fi

echo "== ruff check"
.venv/bin/ruff check consensus node wallet tests scripts
echo "== ruff format --check"
.venv/bin/ruff format --check consensus node wallet tests scripts
echo "== mypy --strict consensus wallet node"
.venv/bin/mypy --strict consensus wallet node
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
