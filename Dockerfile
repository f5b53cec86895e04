# syntax=docker/dockerfile:1
# The image the Helm chart runs: every logtide role (`logtide agent|collect|process|sink|alert`).
#   docker build -t ghcr.io/logtide/logtide:0.1.0 .
#   docker run --rm ghcr.io/logtide/logtide:0.1.0 --help
# Slim Debian base, the package and its dependencies in a virtualenv built in a separate stage (no
# compilers in the final image), running as the unprivileged user 10001 (the chart's runAsUser).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Optional extras to bake in, e.g. --build-arg EXTRAS=bench (none are needed to run a role).
ARG EXTRAS=""
WORKDIR /src
# gcc for the agent's C extension (agents/_lines.c); this stage only: the runtime image has no compiler.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/logtide && /opt/logtide/bin/pip install --upgrade pip setuptools wheel
# Dependencies first, so a source change does not reinstall them (layer cache).
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(d))" \
    && /opt/logtide/bin/pip install -r /tmp/requirements.txt
COPY . .
RUN /opt/logtide/bin/pip install --no-deps . \
    && if [ -n "$EXTRAS" ]; then /opt/logtide/bin/pip install ".[$EXTRAS]"; fi \
    && /opt/logtide/bin/logtide --help >/dev/null \
    && LOGTIDE_AGENT_NATIVE=1 /opt/logtide/bin/python -c "import logtide.agents.line_path"

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="logtide" \
      org.opencontainers.image.description="Log streaming and alerting on Kafka: agents, collectors, processors, sinks, alerting" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/logtide/logtide"
RUN groupadd --system --gid 10001 logtide \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/logtide --no-create-home \
       --shell /usr/sbin/nologin logtide \
    && mkdir -p /var/lib/logtide /etc/logtide \
    && chown 10001:10001 /var/lib/logtide
COPY --from=build /opt/logtide /opt/logtide
ENV PATH=/opt/logtide/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/logtide
WORKDIR /var/lib/logtide
USER 10001:10001
# /metrics, /healthz, /readyz of every role (http.port).
EXPOSE 9464
ENTRYPOINT ["logtide"]
CMD ["--help"]
