"""Pick a file's format from its first line (CRI, docker json-file or plain), once per file."""

from __future__ import annotations

from logtide.agents.parser.cri import CriParser, looks_like_cri
from logtide.agents.parser.docker import DockerParser, looks_like_docker
from logtide.agents.parser.plain import PlainParser

PARSERS = {"cri": CriParser, "docker": DockerParser, "plain": PlainParser}


def detect(first_line: bytes) -> str:
    if looks_like_docker(first_line):
        return "docker"
    if looks_like_cri(first_line):
        return "cri"
    return "plain"


def parser_for(configured: str, first_line: bytes):
    """The parser for a file: the configured format, or (``auto``) the one its first line shows."""
    name = detect(first_line) if configured == "auto" else configured
    return PARSERS[name]()
