#!/usr/bin/env bash
# The test command of the README: the offline checks of every example config and the pipeline and
# alert-rule unit tests of examples/tests, then the whole pytest suite against the real embedded
# broker and local servers.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGTIDE_AUDIT_KEY=ci SF_PRIVATE_KEY=ci logtide check examples/*.yaml
logtide test examples/tests/
python3 -m pytest -q -p no:cacheprovider "$@"
