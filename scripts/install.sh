#!/usr/bin/env bash
# Install Tally from this checkout: makes .venv if missing (Python 3.11+) and installs Tally into
# it, without the test tools (scripts/test.sh adds those). Afterwards: .venv/bin/tally-node,
# .venv/bin/tally-wallet, .venv/bin/tally-devnet.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
echo "installed: .venv/bin/tally-node, .venv/bin/tally-wallet, .venv/bin/tally-devnet"
