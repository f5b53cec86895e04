"""Everything the agent keeps about one file it tails: identity, reader, mergers, what was sent, enrichment."""

from __future__ import annotations

import hashlib
import os
import time

from logtide.agents.config import AgentConfig, MultilineSettings
from logtide.agents.file_identity import FileIdentity
from logtide.agents.multiline import MultilineMerger
from logtide.agents.partial_merger import PartialMerger
from logtide.agents.path_info import PodRef
from logtide.agents.tailer import Tailer
from logtide import envelope


class TrackedFile:
    def __init__(
        self,
        config: AgentConfig,
        path: str,
        fd: int,
        identity: FileIdentity,
        offset: int,
        ref: PodRef | None,
        real_path: str | None = None,
        fmt: str | None = None,
        multiline: MultilineSettings | None = None,
    ):
        self.path = path
        self.real_path = real_path
        self.fd = fd
        self.identity = identity
        self.set_identity(identity)
        self.tailer = Tailer(fd, offset, config.read.max_line_bytes)
        self.parser = None  # picked from the first line
        self.format = fmt or config.format  # configured: auto, cri, docker or plain
        self.partial = PartialMerger(config.partial.max_bytes, config.partial.timeout_seconds)
        self.multiline_settings = multiline or config.multiline
        self.multiline = MultilineMerger.from_settings(self.multiline_settings)
        self.failed: str | None = None  # an unexpected error in its processing: not read until restart
        self.last_sent = 0  # sender.accepted after this file's last record
        self.ref = ref
        self.key = (ref.key if ref else path).encode("utf-8", "surrogateescape")
        # Metric label for this file: namespace/pod/container/<file> for pod logs (no pod uid in a
        # label), the path itself for plain files.
        self.metric_label = f"{ref.key}/{os.path.basename(path)}" if ref else path
        self.resource: dict = {}
        self.attributes: dict[str, dict] = {}  # per stream, shared by the events of this file
        self.templates: dict[str, envelope.EventTemplate] = {}  # per stream: those shared parts, encoded
        self.metadata_version = -1
        self.excluded: str | None = None
        self.detached: str | None = None  # "rename" or "delete": no longer at a watched path
        self.finishing = False
        self.last_data = time.monotonic()
        self.checkpointed = -1

    def set_identity(self, identity: FileIdentity) -> None:
        self.identity = identity
        # envelope.make_id(identity.name, offset), with the constant part hashed once per file
        # (id_prefix: the same constant part for the native line path)
        self.id_prefix = (identity.name + "\x1f").encode()
        self._id_hash = hashlib.blake2b(self.id_prefix, digest_size=16)

    def event_id(self, offset: int) -> str:
        h = self._id_hash.copy()
        h.update(b"%d" % offset)
        return h.hexdigest()

    @property
    def inode_key(self) -> str:
        return self.identity.inode_key

    def checkpoint_offset(self) -> int:
        """The first byte not yet sent (the agent calls it when everything sent was acknowledged)."""
        offset = self.tailer.line_start
        for hold in (self.partial.hold(), self.multiline.hold()):
            if hold is not None and hold < offset:
                offset = hold
        return offset

    def state(self, offset: int) -> dict:
        return {"identity": self.identity.to_dict(), "offset": offset, "path": self.path}

    def buffered(self) -> bool:
        return self.partial.hold() is not None or self.multiline.hold() is not None

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
