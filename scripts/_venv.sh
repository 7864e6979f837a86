# Sourced by scripts/test.sh, scripts/devnet.sh, scripts/install.sh and scripts/fuzz.sh: make
# .venv if missing and install Tally into it from the lock files, so every machine gets the same
# versions: requirements/runtime.lock (a plain install) or, with EXTRAS="[test]",
# requirements/test.lock (runtime and test dependencies; an install with them also serves a plain
# one). Both pin every package, pip and the build backend included, with their hashes;
# `scripts/lock.sh` refreshes them from pyproject.toml's ranges. The install runs again only when
# a lock file or pyproject.toml changed.
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
_stamp_of() { cat pyproject.toml "$1" | sha256sum | cut -d' ' -f1; }
want_test=$(_stamp_of requirements/test.lock)
have_test=$(cat .venv/.tally-installed-test 2>/dev/null || true)
if [ -n "${EXTRAS:-}" ]; then
    lock=requirements/test.lock
    want=$want_test
    current=$have_test
    stamp=.venv/.tally-installed-test
elif [ "$have_test" = "$want_test" ]; then
    lock=requirements/test.lock
    want=$want_test
    current=$have_test
    stamp=.venv/.tally-installed
else
    lock=requirements/runtime.lock
    want=$(_stamp_of requirements/runtime.lock)
    current=$(cat .venv/.tally-installed 2>/dev/null || true)
    stamp=.venv/.tally-installed
fi
if [ "$current" != "$want" ]; then
    echo "== installing tally from $lock into .venv"
    # pip's chatter goes to a log, shown only if the install fails. The lock holds pip and
    # setuptools too, so Tally itself installs without build isolation and without deps.
    if ! { .venv/bin/python -m pip install --quiet --require-hashes -r "$lock" &&
           .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .; } \
           > .venv/install.log 2>&1; then
        cat .venv/install.log >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
