#!/usr/bin/env bash
# The test command of the README: the whole suite against the real embedded broker and servers.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pytest -q -p no:cacheprovider "$@"
