#!/usr/bin/env bash
# The test command of the README: lint and format check (ruff), the offline checks of every example
# config and the pipeline and alert-rule unit tests of examples/tests, then the whole pytest suite
# against the real embedded broker and local servers; the agent's tests once more on its pure-Python
# line path.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
LOGTIDE_AUDIT_KEY=ci SF_PRIVATE_KEY=ci logtide check examples/*.yaml
logtide test examples/tests/
# The agent's tests run on both line paths: the native one (the C extension, which must be built:
# LOGTIDE_AGENT_NATIVE=1 refuses to run without it), then the pure-Python one.
LOGTIDE_AGENT_NATIVE=1 python3 -m pytest -q -p no:cacheprovider "$@"
if [ "$#" -eq 0 ]; then
  LOGTIDE_AGENT_NATIVE=0 python3 -m pytest -q -p no:cacheprovider tests/agents
fi
