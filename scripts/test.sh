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
.venv/bin/ruff check consensus client node wallet tests scripts
echo "== ruff format --check"
.venv/bin/ruff format --check consensus client node wallet tests scripts
echo "== mypy --strict consensus client wallet node"
.venv/bin/mypy --strict consensus client wallet node
# With arguments, one pytest run with them. Without, the suite runs as three pytest processes side
# by side, each with its own temporary directory: tests/integration and tests/functional (both
# mostly waiting on node processes: load, crash loops, devnets) in the background, beside
# everything else (unit, fuzz, browser); the run fails if any does. TALLY_TEST_SERIAL=1 runs it
# as one process instead.
if [ $# -gt 0 ] || [ -n "${TALLY_TEST_SERIAL:-}" ]; then
    echo "== pytest"
    exec .venv/bin/python -m pytest "$@"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/tally-tests.XXXXXX")
pids=()
for group in integration functional; do
    echo "== pytest tests/$group (in the background, its output below when it ends)"
    .venv/bin/python -m pytest -p no:cacheprovider --basetemp="$work/$group" "tests/$group" \
        > "$work/$group.log" 2>&1 &
    pids+=($!)
done
echo "== pytest (everything else)"
rest=0
.venv/bin/python -m pytest -p no:cacheprovider --basetemp="$work/rest" \
    --ignore=tests/integration --ignore=tests/functional tests || rest=$?
failed=()
[ "$rest" -ne 0 ] && failed+=("everything else: exit $rest")
for i in 0 1; do
    group=$([ "$i" -eq 0 ] && echo integration || echo functional)
    status=0
    wait "${pids[$i]}" || status=$?
    echo "== pytest tests/$group"
    cat "$work/$group.log"
    [ "$status" -ne 0 ] && failed+=("tests/$group: exit $status")
done
if [ "${#failed[@]}" -ne 0 ]; then
    echo "!! pytest failed (${failed[*]}); the tests' files (node logs among them) are kept in" \
        "$work" >&2
    exit 1
fi
rm -rf "$work"
