# Sourced by scripts/test.sh and scripts/devnet.sh: make .venv if missing and install Tally into
# it (again only when pyproject.toml changed). Set EXTRAS="[test]" for the test dependencies.
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.tally-installed${EXTRAS:+-test}
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing tally${EXTRAS:-} into .venv"
    # pip's chatter goes to a log, shown only if the install fails
    if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
           .venv/bin/python -m pip install --quiet -e ".${EXTRAS:-}"; } > .venv/install.log 2>&1; then
        cat .venv/install.log >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
