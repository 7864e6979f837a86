#!/usr/bin/env bash
# A local Tally network in one command: makes .venv if missing, installs Tally, then
# `tally-devnet up` with any arguments given (e.g. --nodes 5 --block-time 2).
# Afterwards: `.venv/bin/tally-devnet status` and `.venv/bin/tally-devnet down`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
exec .venv/bin/tally-devnet up "$@"
