"""The webhook receiver is down (connection refused, not a 503) for a long while, and `logtide alert` is
killed -9 in the middle of it: after the receiver comes back each notification arrives exactly once per
notification log, and a later restart sends nothing again.

What tests/alerting already covers (in-process engine): a receiver answering 503 then 200 is paid once
and not again after a clean restart; 429 Retry-After; a restart during group_wait. Added here: the
real process, a refused connection for OUTAGE_S (12 s in CI, 60 s with FAULT_FULL=1), several
alert groups at once, and a kill -9 while their notifications wait for the receiver."""

from __future__ import annotations

import collections
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from logtide import envelope
from logtide.broker import free_port
from logtide.transport import KafkaSettings, TopicSpec, connect
from tests.conftest import ROOT
from tests.faults.chain import write_yaml
from tests.faults.conftest import OUTAGE_S, report
from tests.faults.harness import RoleProcess

TOPIC = "logtide.route.monitoring"
SERVICES = ["auth", "payments", "checkout", "search", "cart"]
RULES = {
    "rules": [
        {
            "name": "Boom",
            "kind": "match",
            "condition": 'body contains "boom"',
            "group_by": ["service.name"],
            "window": "1m",
        }
    ]
}


class HookServer:
    """A webhook receiver on a fixed port that can be down (nothing listening) and up again."""

    def __init__(self, port: int):
        self.port = port
        self.bodies: list[dict] = []
        self.httpd = None

    def up(self) -> None:
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                bodies.append(orjson.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def alerts(self) -> collections.Counter:
        """(service, status) of every alert in every notification received."""
        return collections.Counter(
            (a["labels"].get("service_name"), a["status"]) for b in self.bodies for a in b.get("alerts", [])
        )


def boom(service: str, i: int) -> bytes:
    now = time.time_ns()
    return envelope.encode(
        envelope.new_event(
            id=envelope.make_id("webhook-outage", service, i),
            body=f"boom {i}",
            source="test",
            time=now,
            observed_time=now,
            severity_text="ERROR",
            resource={"service.name": service, "k8s.container.name": service},
        )
    )


@pytest.mark.timeout(OUTAGE_S + 150)
def test_receiver_down_and_alerting_killed_then_each_notification_exactly_once(own_broker, tmp_path):
    settings = KafkaSettings(bootstrap=own_broker, client="confluent")
    transport = connect(settings)
    admin = transport.admin()
    admin.create_topics([TopicSpec(TOPIC, 1)])
    admin.close()
    hook = HookServer(free_port())  # down: nothing listens on its port yet
    write_yaml(tmp_path / "rules.yaml", RULES)
    config = write_yaml(
        tmp_path / "alert.yaml",
        {
            "kafka": {"bootstrap": own_broker, "client": "confluent"},
            "http": {"host": "127.0.0.1", "port": 0},
            "topics": [TOPIC],
            "group_id": "fault-alerting",
            "session_timeout_seconds": 6,
            "rules_files": [str(tmp_path / "rules.yaml")],
            "state_path": str(tmp_path / "alerting.db"),
            "clock": {"mode": "hybrid", "lateness_seconds": 1},
            "api": {"host": "127.0.0.1", "port": 0},
            "route": {
                "receiver": "hook",
                "group_by": ["alertname", "service_name"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "4h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook": [{"url": f"http://127.0.0.1:{hook.port}/hook"}],
                    "retry": {"initial_seconds": 0.2, "max_seconds": 2},
                }
            ],
        },
    )
    alert = RoleProcess(
        ["alert", "--config", config, "--log-level", "info"],
        env={"PYTHONPATH": ROOT},
        log_path=str(tmp_path / "alert.log"),
    )
    producer = transport.producer()
    try:
        alert.start()
        for i in range(3):
            for s in SERVICES:
                producer.produce(TOPIC, boom(s, i), key=s.encode())
        assert producer.flush(10) == 0
        time.sleep(min(6.0, OUTAGE_S / 2))  # fired; notifications refused by the dead receiver
        assert alert.alive(), open(tmp_path / "alert.log").read()[-3000:]
        alert.kill9()
        alert.start()
        time.sleep(max(1.0, OUTAGE_S - 6.0))
        assert alert.alive() and hook.bodies == []
        hook.up()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len({s for s, _ in hook.alerts()}) < len(SERVICES):
            time.sleep(0.2)
        time.sleep(3.0)  # retries in flight or a second page would show up now
        after_recovery = hook.alerts()
        assert alert.stop() == 0
        alert.start()  # a restart: the notification log says all were sent
        time.sleep(5.0)
        assert alert.stop() == 0
    finally:
        alert.kill9()
        hook.down()
    # each notification exactly once: every group's firing one; with the long outage (FAULT_FULL) the
    # match window ends while the receiver is down, and the group's resolved notification follows, once
    assert {s for s, status in after_recovery if status == "firing"} == set(SERVICES), after_recovery
    assert set(after_recovery.values()) == {1}, after_recovery
    assert hook.alerts() == after_recovery, "a restart paged again"
    report(
        "webhook_outage",
        {
            "outage_s": OUTAGE_S,
            "notifications": len(hook.bodies),
            "alert_groups": len(SERVICES),
            "alerts_notified": dict(collections.Counter(status for _, status in after_recovery)),
            "alerting_kills": alert.kills,
            "duplicates": 0,
        },
    )
