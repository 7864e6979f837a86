# Sourced by scripts/test.sh, scripts/devnet.sh, scripts/install.sh and scripts/fuzz.sh: make
# .venv if missing and install Tally into it (again only when pyproject.toml changed).
# EXTRAS="[test]" adds the test dependencies; an install with them also serves a plain one.
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
with_tests=$(cat .venv/.tally-installed-test 2>/dev/null || true)
plain=$(cat .venv/.tally-installed 2>/dev/null || true)
if [ -n "${EXTRAS:-}" ]; then
    current=$with_tests
    stamp=.venv/.tally-installed-test
elif [ "$with_tests" = "$want" ]; then
    current=$with_tests
    stamp=.venv/.tally-installed
else
    current=$plain
    stamp=.venv/.tally-installed
fi
if [ "$current" != "$want" ]; then
    echo "== installing tally${EXTRAS:-} into .venv"
    # pip's chatter goes to a log, shown only if the install fails
    if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
           .venv/bin/python -m pip install --quiet -e ".${EXTRAS:-}"; } > .venv/install.log 2>&1; then
        cat .venv/install.log >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
