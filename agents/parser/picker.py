"""Pick a file's format (CRI, docker json-file or plain), once per file, from where the file is and
what its first line is.

- docker's own layout (``.../containers/<id>/<id>-json.log``, what /var/log/pods symlinks to under
  dockershim and cri-dockerd): docker json-file;
- otherwise a first line of docker's exact shape (``log``, ``stream``, ``time``): docker; of CRI's
  shape (``<time> <stdout|stderr> <P|F> ...``): CRI;
- anything else: plain lines. A JSON object with a ``log`` key is application output, not docker's.
"""

from __future__ import annotations

import re

from logtide.agents.parser.cri import CriParser, looks_like_cri
from logtide.agents.parser.docker import DockerParser, looks_like_docker
from logtide.agents.parser.plain import PlainParser

PARSERS = {"cri": CriParser, "docker": DockerParser, "plain": PlainParser}
_DOCKER_LAYOUT = re.compile(r"(?:^|/)containers/([0-9a-f]{64})/\1-json\.log(?:\.\d+)?$")


def detect(first_line: bytes, *paths: str | None) -> str:
    if any(p and _DOCKER_LAYOUT.search(p) for p in paths):
        return "docker"
    if looks_like_docker(first_line):
        return "docker"
    if looks_like_cri(first_line):
        return "cri"
    return "plain"


def parser_for(configured: str, first_line: bytes, *paths: str | None):
    """The parser for a file: the configured format, or (``auto``) the one its place and first line show."""
    name = detect(first_line, *paths) if configured == "auto" else configured
    return PARSERS[name]()
