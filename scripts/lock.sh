#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml's ranges (and requirements/build.in): the newest
# versions those ranges allow, every one pinned with its hashes, for Python 3.11+ on any platform.
#   requirements/test.lock     runtime + test dependencies (scripts/test.sh, scripts/fuzz.sh)
#   requirements/runtime.lock  runtime only, at the same versions as test.lock (scripts/devnet.sh)
# The resolver (uv) runs from a throw-away virtual environment; nothing is installed into .venv.
# Afterwards run scripts/test.sh (it re-installs .venv from the new lock) and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
tool=$(mktemp -d)
trap 'rm -rf "$tool"' EXIT
"$PYTHON" -m venv "$tool"
"$tool/bin/python" -m pip install --quiet uv
compile() {
    "$tool/bin/uv" pip compile pyproject.toml requirements/build.in --generate-hashes --universal \
        --python-version 3.11 --quiet --no-header "$@"
}
compile --extra test --upgrade -o requirements/test.lock
compile -c requirements/test.lock -o requirements/runtime.lock
echo "== requirements/test.lock: $(grep -c '^[a-z]' requirements/test.lock) packages;" \
     "requirements/runtime.lock: $(grep -c '^[a-z]' requirements/runtime.lock)"
