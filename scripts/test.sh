#!/usr/bin/env bash
# The test command of the README: the pipeline and alert-rule unit tests of examples/tests (offline),
# then the whole pytest suite against the real embedded broker and local servers.
set -euo pipefail
cd "$(dirname "$0")/.."
logtide test examples/tests/
python3 -m pytest -q -p no:cacheprovider "$@"
