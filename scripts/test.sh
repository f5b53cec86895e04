#!/usr/bin/env bash
# The test command of the README: lint and format check (ruff), the offline checks of every example
# config and the pipeline and alert-rule unit tests of examples/tests, then the whole pytest suite
# against the real embedded broker and local servers.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
LOGTIDE_AUDIT_KEY=ci SF_PRIVATE_KEY=ci logtide check examples/*.yaml
logtide test examples/tests/
python3 -m pytest -q -p no:cacheprovider "$@"
