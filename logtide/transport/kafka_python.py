"""kafka-python backend: pure Python, always available, slower (see bench/RESULTS.md)."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import deque
from typing import Any

import kafka
import kafka.errors as kerr
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from logtide.transport.base import (
    Admin,
    Consumer,
    KafkaSettings,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
    Transport,
    TransportError,
    sasl_refusal,
)


#: What kafka-python raises for an unreachable cluster (KafkaError) or a bad property (the rest).
_CONSTRUCT_ERRORS = (kerr.KafkaError, ValueError, TypeError, AssertionError)


def _common(settings: KafkaSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        conf["sasl_mechanism"] = settings.sasl_mechanism
        conf["sasl_plain_username"] = settings.sasl_username
        conf["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    if settings.ssl_cafile:
        conf["ssl_cafile"] = settings.ssl_cafile
    if settings.ssl_certfile:
        conf["ssl_certfile"] = settings.ssl_certfile
    if settings.ssl_keyfile:
        conf["ssl_keyfile"] = settings.ssl_keyfile
    return conf


#: kafka-python's words for a refused login, in the connection errors it logs (it raises only a timeout).
_SASL_REFUSED = re.compile(r"\b(\w*Sasl\w*Error|\w*Authentication\w*Error)\b.*")
#: "... failed: <reason> (backoff 0.2 secs)": the reason of a failed bootstrap connection.
_CONNECT_FAILED = re.compile(r"(?:connection to \S+ failed|Connection lost): (.*?)(?: \(backoff [^)]*\))?$")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        #: a SASL login was under way (its module logged); kafka-python's SCRAM client then fails on a
        #: refusal with a bare KeyError ('v': no server signature in "e=unknown-user")
        self.sasl_started = False

    def emit(self, record):
        try:
            self.sasl_started = self.sasl_started or record.name.startswith("kafka.net.sasl")
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a bad log call must not break the check
            pass


class KafkaPythonProducer(Producer):
    def __init__(
        self, conf: dict[str, Any], max_buffer: int, report_successes: bool = True, max_buffer_bytes: int | None = None
    ):
        try:
            self._p = KafkaProducer(**conf)
        except _CONSTRUCT_ERRORS as exc:
            raise TransportError(f"cannot create producer: {exc}") from None
        # kafka-python calls future callbacks on its sender thread; we hand them to the caller's
        # thread through this queue so both backends call on_delivery from poll()/flush().
        self._done: deque = deque()
        # Records sent but whose callback poll() has not served yet. Only the caller's thread
        # touches it (produce and poll), so a plain int does; a Semaphore cost ~20% of produce.
        self._inflight = 0
        self._max_buffer = max_buffer
        # kafka-python 3 has no buffer_memory any more: the bytes bound is kept here, like the count.
        self._inflight_bytes = 0
        self._max_buffer_bytes = max_buffer_bytes or 0
        self._report_successes = report_successes

    def produce(self, topic, value, key=None, headers=None, partition=None, on_delivery=None, timestamp_ms=None):
        size = len(value or b"") + len(key or b"")
        while self._inflight >= self._max_buffer or (
            self._max_buffer_bytes and self._inflight and self._inflight_bytes + size > self._max_buffer_bytes
        ):
            self.poll(0.05)  # backpressure: wait for acks
        try:
            fut = self._p.send(
                topic, value=value, key=key, headers=headers or None, partition=partition, timestamp_ms=timestamp_ms
            )
        except kerr.KafkaError as exc:
            raise TransportError(str(exc)) from None
        self._inflight += 1
        self._inflight_bytes += size
        done = self._done
        report = self._report_successes

        def ok(meta):
            if not report:
                done.append((None, None, None, size))  # counted off by poll(), nobody called
                return
            done.append(
                (on_delivery, None, Record(meta.topic, meta.partition, meta.offset, key, value, headers, None), size)
            )

        def failed(exc):
            done.append(
                (
                    on_delivery,
                    TransportError(str(exc)),
                    Record(topic, partition if partition is not None else -1, -1, key, value, headers, None),
                    size,
                )
            )

        fut.add_callback(ok)
        fut.add_errback(failed)

    def poll(self, timeout=0.0):
        if timeout and not self._done:
            threading.Event().wait(min(timeout, 0.05))
        served = 0
        while self._done:
            cb, err, rec, size = self._done.popleft()
            self._inflight -= 1
            self._inflight_bytes -= size
            served += 1
            if cb is not None:
                cb(err, rec)
        return served

    def flush(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._p.flush(timeout=timeout)
        except kerr.KafkaTimeoutError:
            pass
        # kafka-python marks a batch done *before* its sender thread runs the records' callbacks,
        # so some acks may still be on their way into our queue: wait for them (within the timeout).
        self.poll(0)
        while self._inflight and (deadline is None or time.monotonic() < deadline):
            self.poll(0.01)
        return self._inflight  # not yet acknowledged (0 after a complete flush)

    def pending(self):
        return self._inflight

    def close(self):
        try:
            self.flush(10)  # serves the last delivery callbacks too
        except kerr.KafkaError:
            pass
        self._p.close(timeout=5)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign, on_revoke):
        self._assign, self._revoke = on_assign, on_revoke

    def on_partitions_revoked(self, revoked):
        if self._revoke:
            self._revoke([TopicPartition(p.topic, p.partition) for p in revoked])

    def on_partitions_assigned(self, assigned):
        if self._assign:
            self._assign([TopicPartition(p.topic, p.partition) for p in assigned])


class KafkaPythonConsumer(Consumer):
    def __init__(self, conf: dict[str, Any]):
        try:
            self._c = KafkaConsumer(**conf)
        except _CONSTRUCT_ERRORS as exc:
            raise TransportError(f"cannot create consumer: {exc}") from None

    def subscribe(self, topics, on_assign=None, on_revoke=None, pattern=False):
        listener = _Listener(on_assign, on_revoke)
        if pattern:
            self._c.subscribe(pattern="|".join(f"(?:{t})" for t in topics), listener=listener)
        else:
            self._c.subscribe(topics, listener=listener)

    def assign(self, partitions):
        self._c.assign([KTP(t, p) for t, p in partitions])

    def assignment(self):
        return [TopicPartition(p.topic, p.partition) for p in self._c.assignment()]

    def poll_batch(self, max_records=500, timeout=1.0):
        try:
            batches = self._c.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except kerr.KafkaError as exc:
            raise TransportError(str(exc)) from None
        out = []
        for recs in batches.values():
            for r in recs:
                out.append(Record(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ()), r.timestamp))
        return out

    def commit(self, offsets):
        if not offsets:
            return
        try:
            self._c.commit({KTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()})
        except kerr.KafkaError as exc:
            raise TransportError(f"commit failed: {exc}") from None

    def committed(self, partitions):
        return {TopicPartition(t, p): self._c.committed(KTP(t, p)) for t, p in partitions}

    def seek(self, tp, offset):
        self._c.seek(KTP(tp[0], tp[1]), offset)

    def offsets_for_times(self, times_ms):
        res = self._c.offsets_for_times({KTP(t, p): ms for (t, p), ms in times_ms.items()})
        return {TopicPartition(k.topic, k.partition): (v.offset if v is not None else None) for k, v in res.items()}

    def beginning_offsets(self, partitions):
        res = self._c.beginning_offsets([KTP(t, p) for t, p in partitions])
        return {TopicPartition(k.topic, k.partition): v for k, v in res.items()}

    def end_offsets(self, partitions):
        res = self._c.end_offsets([KTP(t, p) for t, p in partitions])
        return {TopicPartition(k.topic, k.partition): v for k, v in res.items()}

    def partitions_for(self, topic):
        parts = self._c.partitions_for_topic(topic)
        return [TopicPartition(topic, p) for p in sorted(parts or ())]

    def pause(self, partitions):
        self._c.pause(*[KTP(t, p) for t, p in partitions])

    def resume(self, partitions):
        self._c.resume(*[KTP(t, p) for t, p in partitions])

    def close(self):
        self._c.close(autocommit=False)


def _group_id(g) -> str:
    """list_groups() items are tuples in old kafka-python releases and dicts in 3.x."""
    if isinstance(g, dict):
        return g.get("group_id") or g.get("group")
    return g[0] if isinstance(g, tuple) else str(g)


class KafkaPythonAdmin(Admin):
    def __init__(self, conf: dict[str, Any]):
        try:
            self._a = KafkaAdminClient(**conf)
        except _CONSTRUCT_ERRORS as exc:
            raise TransportError(f"cannot reach Kafka at {','.join(conf['bootstrap_servers'])}: {exc}") from None

    def create_topics(self, specs: list[TopicSpec], timeout=30.0):
        existing = self.list_topics()
        todo = [s for s in specs if s.name not in existing]
        if not todo:
            return []
        try:
            self._a.create_topics(
                [NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config) for s in todo],
                timeout_ms=int(timeout * 1000),
            )
        except kerr.TopicAlreadyExistsError:
            pass
        except kerr.KafkaError as exc:
            raise TransportError(f"create topics: {exc}") from None
        return [s.name for s in todo]

    def list_topics(self, timeout=None):
        # kafka-python's admin reached the cluster when it was built (bootstrap_timeout_ms).
        try:
            meta = self._a.describe_topics()
        except kerr.KafkaError as exc:
            raise TransportError(f"list topics: {exc}") from None
        names = ((t.get("name") or t.get("topic"), t) for t in meta)
        return {n: len(t["partitions"]) for n, t in names if n and not n.startswith("__")}

    def delete_topics(self, names, timeout=30.0):
        try:
            self._a.delete_topics(list(names), timeout_ms=int(timeout * 1000))
        except kerr.KafkaError as exc:
            raise TransportError(f"delete topics: {exc}") from None

    def list_groups(self):
        try:
            groups = self._a.list_groups()
        except kerr.KafkaError as exc:
            raise TransportError(f"list groups: {exc}") from None
        return sorted(_group_id(g) for g in groups)

    def cluster_id(self):
        try:
            return self._a.describe_cluster().get("cluster_id")
        except kerr.KafkaError as exc:
            raise TransportError(f"describe cluster: {exc}") from None

    def topic_ids(self, names):
        out: dict[str, str | None] = {n: None for n in names}
        for name in names:  # one by one: a missing topic fails only its own lookup
            try:
                [topic] = self._a.describe_topics([name])
            except (kerr.KafkaError, ValueError):
                continue
            if topic.get("error_code") == 0 and topic.get("topic_id"):
                out[name] = str(uuid.UUID(str(topic["topic_id"])))
        return out

    def group_offsets(self, group):
        try:
            res = self._a.list_group_offsets(group).get(group, {})
        except kerr.KafkaError as exc:
            raise TransportError(f"offsets of group {group}: {exc}") from None
        return {TopicPartition(k.topic, k.partition): v.offset for k, v in res.items() if v.offset >= 0}

    def close(self):
        self._a.close()


class KafkaPythonTransport(Transport):
    name = "kafka-python"

    def __init__(self, settings: KafkaSettings):
        super().__init__(settings)
        self._conf = _common(settings)

    def producer(self, *, linger_ms=5, max_buffer=100_000, max_buffer_bytes=None, report_successes=True, **overrides):
        conf = dict(self._conf)
        conf.update(
            {
                "acks": "all",
                "enable_idempotence": True,
                "linger_ms": linger_ms,
                "compression_type": "lz4",
                "batch_size": 256 * 1024,
            }
        )
        if max_buffer_bytes and "buffer_memory" in KafkaProducer.DEFAULT_CONFIG:  # kafka-python < 3
            conf["buffer_memory"] = max(max_buffer_bytes, conf["batch_size"])
        conf.update(self.settings.producer)
        conf.update(overrides)
        return KafkaPythonProducer(conf, max_buffer, report_successes, max_buffer_bytes)

    def consumer(self, group_id=None, *, auto_offset_reset="earliest", session_timeout_seconds=45.0, **overrides):
        conf = dict(self._conf)
        conf.update(
            {
                "group_id": group_id,
                "enable_auto_commit": False,
                "auto_offset_reset": auto_offset_reset,
                "session_timeout_ms": int(session_timeout_seconds * 1000),
                "heartbeat_interval_ms": max(500, int(session_timeout_seconds * 1000) // 5),
            }
        )
        conf.update(self.settings.consumer)
        conf.update(overrides)
        return KafkaPythonConsumer(conf)

    def admin(self, *, timeout=None):
        conf = dict(self._conf)
        if timeout:
            conf["bootstrap_timeout_ms"] = int(timeout * 1000)
            conf["request_timeout_ms"] = int(timeout * 1000)
        return KafkaPythonAdmin(conf)

    def reach(self, timeout):
        # kafka-python logs why each bootstrap attempt failed (with tracebacks, once per reconnect) and
        # raises only "Unable to bootstrap": collect its log instead of printing it, for the reason.
        # At start no other client of this process logs through "kafka" yet.
        kafka_log = logging.getLogger("kafka")
        collect, propagate = _Collect(), kafka_log.propagate
        kafka_log.addHandler(collect)
        kafka_log.propagate = False
        deadline = time.monotonic() + timeout
        try:
            while True:
                # short asks: a refused login is known after the first, bootstrapping waits it all out
                try:
                    super().reach(max(0.2, min(1.0, deadline - time.monotonic())))
                    return
                except TransportError:
                    if time.monotonic() >= deadline or any(map(_SASL_REFUSED.search, collect.messages)):
                        raise
        except TransportError:
            for message in reversed(collect.messages):
                refused = _SASL_REFUSED.search(message)
                if refused:
                    raise sasl_refusal(self.settings.bootstrap, refused.group(0)) from None
            for message in reversed(collect.messages):
                failed = _CONNECT_FAILED.search(message)
                if failed and collect.sasl_started:
                    raise sasl_refusal(
                        self.settings.bootstrap, f"the connection ended during the login: {failed.group(1)}"
                    ) from None
                if failed:
                    raise TransportError(
                        f"cannot reach Kafka at {self.settings.bootstrap}: {failed.group(1)}"
                    ) from None
            raise
        finally:
            kafka_log.removeHandler(collect)
            kafka_log.propagate = propagate


__all__ = ["KafkaPythonTransport", "kafka"]
