"""confluent-kafka (librdkafka) backend: the fast one."""

from __future__ import annotations

import logging
import time
import uuid
from functools import partial
from typing import Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from logtide.transport.base import (
    Admin,
    BufferFull,
    Consumer,
    DeliveryCallback,
    KafkaSettings,
    Producer,
    Record,
    RebalanceCallback,
    TopicPartition,
    TopicSpec,
    Transport,
    TransportError,
    sasl_refusal,
)


# librdkafka's own log lines go through Python logging (JSON on stderr), not raw to the terminal.
_RDKAFKA_LOG = logging.getLogger("librdkafka")
# The check at start reports what went wrong itself, in one line: its client's log lines go nowhere.
_QUIET_LOG = logging.getLogger("logtide.transport.reach")
_QUIET_LOG.propagate = False
_QUIET_LOG.addHandler(logging.NullHandler())

#: librdkafka's error codes for a refused login (its own _AUTHENTICATION, and the broker's answers).
_SASL_REFUSED = {
    ck.KafkaError._AUTHENTICATION,
    ck.KafkaError.SASL_AUTHENTICATION_FAILED,
    ck.KafkaError.UNSUPPORTED_SASL_MECHANISM,
    ck.KafkaError.ILLEGAL_SASL_STATE,
}


def _common(settings: KafkaSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "logger": _RDKAFKA_LOG,
        "bootstrap.servers": settings.bootstrap,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        conf["sasl.mechanism"] = settings.sasl_mechanism
        conf["sasl.username"] = settings.sasl_username or ""
        conf["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    if settings.ssl_cafile:
        conf["ssl.ca.location"] = settings.ssl_cafile
    if settings.ssl_certfile:
        conf["ssl.certificate.location"] = settings.ssl_certfile
    if settings.ssl_keyfile:
        conf["ssl.key.location"] = settings.ssl_keyfile
    return conf


def _reason(text: str) -> str:
    """librdkafka's error text without the broker address prefix and the timing suffix."""
    text = text.split("/bootstrap: ", 1)[-1]
    return text.split(" (after ", 1)[0]


def _client(cls, conf: dict[str, Any], what: str):
    """Build a librdkafka client; a bad property (e.g. in kafka.producer/consumer) is a TransportError."""
    try:
        return cls(conf)
    except (ck.KafkaException, ValueError, TypeError) as exc:
        raise TransportError(f"cannot create Kafka {what}: {exc}") from None


def _record(msg: ck.Message, Record=Record) -> Record:  # noqa: N803 - bound as a local for speed
    ts_type, ts = msg.timestamp()
    return Record(
        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(), ts if ts_type else None
    )  # ts_type 0 = TIMESTAMP_NOT_AVAILABLE


class _DeliveredRecord(Record):
    """The record of a delivery report, read from librdkafka's message only when a field is used
    (most callbacks look at one or two fields, or none: this keeps produce cheap)."""

    __slots__ = ("_msg",)

    def __init__(self, msg: ck.Message):
        self._msg = msg

    topic = property(lambda self: self._msg.topic())
    partition = property(lambda self: self._msg.partition())
    offset = property(lambda self: self._msg.offset())
    key = property(lambda self: self._msg.key())
    value = property(lambda self: self._msg.value())
    headers = property(lambda self: self._msg.headers() or [])
    timestamp = property(lambda self: self._msg.timestamp()[1] if self._msg.timestamp()[0] else None)


def _delivered(on_delivery: DeliveryCallback, err, msg) -> None:
    on_delivery(TransportError(str(err)) if err is not None else None, _DeliveredRecord(msg))


class ConfluentProducer(Producer):
    def __init__(self, conf: dict[str, Any]):
        self._p = _client(ck.Producer, conf, "producer")
        self._last_cb = self._last_wrapped = None

    def produce(self, topic, value, key=None, headers=None, partition=None, on_delivery=None, timestamp_ms=None):
        if on_delivery is None:
            cb = None
        elif on_delivery is self._last_cb:
            cb = self._last_wrapped  # high-rate callers pass one callback for every record: wrap it once
        else:
            cb = partial(_delivered, on_delivery)
            self._last_cb, self._last_wrapped = on_delivery, cb
        part = -1 if partition is None else partition  # -1: the partitioner picks (by key)
        while True:
            try:
                # Positional on purpose: parsing keyword arguments took ~40 % of this call. The slots:
                # topic, value, key, partition, callback, on_delivery (alias), timestamp (0 = now), headers.
                self._p.produce(topic, value, key, part, cb, None, timestamp_ms or 0, headers)
                return
            except BufferError:
                # Local queue full: serve callbacks until there is room (this is the backpressure).
                self._p.poll(0.1)
            except ck.KafkaException as exc:
                raise TransportError(str(exc)) from None

    def bind(self, topic, on_delivery, wait=True):
        client = self._p
        produce = client.produce
        cb = None if on_delivery is None else partial(_delivered, on_delivery)

        def send(value, key, headers):
            try:
                produce(topic, value, key, -1, cb, None, 0, headers)  # positional: see produce()
            except BufferError:
                if not wait:
                    raise BufferFull(f"producer buffer full ({len(client)} records queued)") from None
                self.produce(topic, value, key, headers, None, on_delivery)  # waits for room
            except ck.KafkaException as exc:
                raise TransportError(str(exc)) from None

        return send

    def poll(self, timeout=0.0):
        return self._p.poll(timeout)

    def flush(self, timeout=None):
        return self._p.flush(-1 if timeout is None else timeout)

    def pending(self):
        return len(self._p)

    def close(self):
        self._p.flush(10)
        # Drop the client now: a librdkafka handle left to the GC keeps reconnecting meanwhile.
        self._p = None


class ConfluentConsumer(Consumer):
    def __init__(self, conf: dict[str, Any]):
        self._c = _client(ck.Consumer, conf, "consumer")
        self._group = conf.get("group.id")
        self._manual = False

    def subscribe(
        self,
        topics,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        pattern: bool = False,
    ):
        kwargs = {}
        if on_assign:
            kwargs["on_assign"] = lambda c, parts: on_assign([TopicPartition(p.topic, p.partition) for p in parts])
        if on_revoke:
            kwargs["on_revoke"] = lambda c, parts: on_revoke([TopicPartition(p.topic, p.partition) for p in parts])
            kwargs["on_lost"] = kwargs["on_revoke"]
        self._c.subscribe(["^" + t if pattern and not t.startswith("^") else t for t in topics], **kwargs)

    def assign(self, partitions):
        self._manual = True
        self._c.assign([ck.TopicPartition(t, p) for t, p in partitions])

    def assignment(self):
        return [TopicPartition(p.topic, p.partition) for p in self._c.assignment()]

    def poll_batch(self, max_records=500, timeout=1.0):
        msgs = self._c.consume(max_records, timeout)
        out = []
        append, rec = out.append, _record
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == ck.KafkaError._PARTITION_EOF:
                    continue
                if err.fatal() or not err.retriable():
                    raise TransportError(str(err))
                continue
            append(rec(m))
        return out

    def commit(self, offsets):
        if not offsets:
            return
        try:
            self._c.commit(offsets=[ck.TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except ck.KafkaException as exc:
            raise TransportError(f"commit failed: {exc}") from None

    def committed(self, partitions):
        res = self._c.committed([ck.TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {TopicPartition(r.topic, r.partition): (r.offset if r.offset >= 0 else None) for r in res}

    def seek(self, tp, offset):
        target = ck.TopicPartition(tp[0], tp[1], offset)
        try:
            self._c.seek(target)
        except ck.KafkaException:
            # Not yet fetching (just assigned): re-assign at the offset instead.
            current = [
                ck.TopicPartition(p.topic, p.partition, p.offset)
                for p in self._c.assignment()
                if (p.topic, p.partition) != tuple(tp)
            ]
            self._c.assign(current + [target])

    def offsets_for_times(self, times_ms):
        res = self._c.offsets_for_times([ck.TopicPartition(t, p, ms) for (t, p), ms in times_ms.items()], timeout=10)
        return {TopicPartition(r.topic, r.partition): (r.offset if r.offset >= 0 else None) for r in res}

    def _watermarks(self, partitions, index):
        out = {}
        for t, p in partitions:
            try:
                out[TopicPartition(t, p)] = self._c.get_watermark_offsets(ck.TopicPartition(t, p), timeout=10)[index]
            except ck.KafkaException as exc:
                raise TransportError(f"watermarks of {t}[{p}]: {exc}") from None
        return out

    def beginning_offsets(self, partitions):
        return self._watermarks(partitions, 0)

    def end_offsets(self, partitions):
        return self._watermarks(partitions, 1)

    def partitions_for(self, topic):
        md = self._c.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return []
        return [TopicPartition(topic, p) for p in sorted(t.partitions)]

    def pause(self, partitions):
        self._c.pause([ck.TopicPartition(t, p) for t, p in partitions])

    def resume(self, partitions):
        self._c.resume([ck.TopicPartition(t, p) for t, p in partitions])

    def close(self):
        if self._manual:
            # librdkafka can abort (rdkafka_assignment.c "rktp_started") when a consumer whose manual
            # assignment was just replaced by seek() is closed before it ever polled; one poll settles it.
            self._c.poll(0)
        self._c.close()


class ConfluentAdmin(Admin):
    def __init__(self, conf: dict[str, Any], timeout: float | None = None):
        self._a = _client(AdminClient, conf, "admin client")
        self._conf = conf
        self._timeout = timeout or 10.0

    def create_topics(self, specs: list[TopicSpec], timeout=30.0):
        existing = self.list_topics()
        todo = [s for s in specs if s.name not in existing]
        if not todo:
            return []
        futures = self._a.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication, config=s.config)
                for s in todo
            ],
            request_timeout=timeout,
        )
        created = []
        for name, fut in futures.items():
            try:
                fut.result(timeout)
                created.append(name)
            except ck.KafkaException as exc:
                if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TransportError(f"create topic {name}: {exc}") from None
        return created

    def cluster_id(self):
        try:
            return self._a.list_topics(timeout=self._timeout).cluster_id
        except ck.KafkaException as exc:
            raise TransportError(f"cannot reach Kafka at {self._conf['bootstrap.servers']}: {exc}") from None

    def topic_ids(self, names):
        out: dict[str, str | None] = {n: None for n in names}
        if not names:
            return out
        try:
            futures = self._a.describe_topics(ck.TopicCollection(list(names)), request_timeout=self._timeout)
        except (AttributeError, ck.KafkaException):  # an older client without describe_topics
            return out
        for name, fut in futures.items():
            try:
                tid = fut.result(self._timeout).topic_id  # the same UUID text as kafka-python gives
                out[name] = str(
                    uuid.UUID(
                        int=((tid.get_most_significant_bits() & (2**64 - 1)) << 64)
                        | (tid.get_least_significant_bits() & (2**64 - 1))
                    )
                )
            except ck.KafkaException:
                out[name] = None  # no such topic
        return out

    def list_topics(self, timeout=None):
        try:
            md = self._a.list_topics(timeout=timeout or self._timeout)
        except ck.KafkaException as exc:
            reason = exc.args[0].str() if exc.args and isinstance(exc.args[0], ck.KafkaError) else str(exc)
            raise TransportError(f"cannot reach Kafka at {self._conf['bootstrap.servers']}: {reason}") from None
        return {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}

    def delete_topics(self, names, timeout=30.0):
        for name, fut in self._a.delete_topics(list(names), request_timeout=timeout).items():
            try:
                fut.result(timeout)
            except ck.KafkaException as exc:
                raise TransportError(f"delete topic {name}: {exc}") from None

    def list_groups(self):
        try:
            res = self._a.list_consumer_groups(request_timeout=10).result()
        except ck.KafkaException as exc:
            raise TransportError(f"list groups: {exc}") from None
        return sorted(g.group_id for g in res.valid)

    def group_states(self, groups):
        out: dict[str, str | None] = {g: None for g in groups}
        if not groups:
            return out
        try:
            futures = self._a.describe_consumer_groups(list(groups), request_timeout=10)
        except ck.KafkaException:
            return out
        for g, fut in futures.items():
            try:
                desc = fut.result(10)
            except ck.KafkaException:
                continue
            if desc.state is not None:
                out[g] = desc.state.name.title().replace("_", "")
        return out

    def group_offsets(self, group):
        from confluent_kafka import ConsumerGroupTopicPartitions

        futs = self._a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)
        try:
            res = futs[group].result()
        except ck.KafkaException as exc:
            raise TransportError(f"offsets of group {group}: {exc}") from None
        return {TopicPartition(p.topic, p.partition): p.offset for p in res.topic_partitions if p.offset >= 0}

    def close(self):
        pass


class ConfluentTransport(Transport):
    name = "confluent"

    def __init__(self, settings: KafkaSettings):
        super().__init__(settings)
        self._conf = _common(settings)

    def producer(self, *, linger_ms=5, max_buffer=100_000, max_buffer_bytes=None, report_successes=True, **overrides):
        conf = dict(self._conf)
        conf.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                "queue.buffering.max.messages": max_buffer,
                "compression.type": "lz4",
                "delivery.report.only.error": not report_successes,
            }
        )
        if max_buffer_bytes:
            conf["queue.buffering.max.kbytes"] = max(1, -(-max_buffer_bytes // 1024))
        conf.update(self.settings.producer)
        conf.update(overrides)
        return ConfluentProducer(conf)

    def consumer(self, group_id=None, *, auto_offset_reset="earliest", session_timeout_seconds=45.0, **overrides):
        conf = dict(self._conf)
        conf.update(
            {
                # librdkafka insists on a group.id even for manual assignment; it is never joined then.
                "group.id": group_id or "logtide-unjoined",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": auto_offset_reset,
                "session.timeout.ms": int(session_timeout_seconds * 1000),
                "heartbeat.interval.ms": max(500, int(session_timeout_seconds * 1000) // 5),
                "enable.partition.eof": False,
            }
        )
        conf.update(self.settings.consumer)
        conf.update(overrides)
        return ConfluentConsumer(conf)

    def admin(self, *, timeout=None):
        return ConfluentAdmin(dict(self._conf), timeout)

    def reach(self, timeout):
        errors: list[ck.KafkaError] = []
        admin = ConfluentAdmin({**self._conf, "logger": _QUIET_LOG, "error_cb": errors.append}, timeout)
        deadline = time.monotonic() + timeout
        while True:
            # short asks: a refused login is known after the first, list_topics would wait it all out
            try:
                admin.list_topics(timeout=max(0.1, min(0.5, deadline - time.monotonic())))
                return
            except TransportError:
                admin._a.poll(0)  # serves error_cb: librdkafka's reason, which list_topics does not say
                refused = [e for e in errors if e.code() in _SASL_REFUSED]
                if refused:
                    raise sasl_refusal(self.settings.bootstrap, _reason(refused[-1].str())) from None
                if time.monotonic() < deadline:
                    continue
                causes = [e for e in errors if e.code() != ck.KafkaError._ALL_BROKERS_DOWN]
                if causes:
                    raise TransportError(
                        f"cannot reach Kafka at {self.settings.bootstrap}: {_reason(causes[-1].str())}"
                    ) from None
                raise
