"""The alerting engine's Prometheus metrics (one place, so names stay unique and bounded)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("logtide_alerting_events_total", "Events evaluated by the alerting engine", ["result"])
EVENTS_DROPPED = Counter(
    "logtide_alerting_events_dropped_total",
    "Events matching a rule's condition that the rule could not count: stamped too far "
    "in the future, or older than its window or the catch-up horizon",
    ["rule", "reason"],
)
RULE_MATCHES = Counter("logtide_alerting_rule_matches_total", "Events that matched a rule's condition", ["rule"])
GROUPS_DROPPED = Counter(
    "logtide_alerting_groups_dropped_total",
    "Events of new groups not tracked because a rule reached its max_groups",
    ["rule"],
)
NEW_TERMS_EVICTED = Counter(
    "logtide_alerting_new_terms_evicted_total",
    "Known terms forgotten because a new_term rule reached its store size",
    ["rule"],
)
TRACKED_KEYS = Gauge("logtide_alerting_tracked_keys", "Group keys a rule tracks in its windows", ["rule"])
ALERTS = Gauge("logtide_alerting_alerts", "Alerts by state", ["state"])
TRANSITIONS = Counter("logtide_alerting_transitions_total", "Alert state changes", ["to"])
NOTIFICATIONS = Counter("logtide_alerting_notifications_total", "Notifications delivered", ["receiver", "integration"])
NOTIFY_FAILURES = Counter(
    "logtide_alerting_notification_failures_total",
    "Notification attempts that failed",
    ["receiver", "integration", "reason"],
)
NOTIFY_SECONDS = Histogram(
    "logtide_alerting_notification_seconds",
    "Time to deliver one notification",
    ["integration"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMITED = Counter(
    "logtide_alerting_rate_limited_total", "Notifications delayed by a receiver's rate limit", ["receiver"]
)
TEMPLATE_ERRORS = Counter(
    "logtide_alerting_template_errors_total",
    "Templates that failed to render (a plain fallback was sent)",
    ["receiver"],
)
RULE_RELOADS = Counter("logtide_alerting_rule_reloads_total", "Rule file reloads", ["result"])
SILENCED = Counter("logtide_alerting_muted_total", "Alerts left out of a notification", ["reason"])
BATCH_SECONDS = Histogram(
    "logtide_alerting_batch_seconds",
    "Time to evaluate and persist one consumed batch",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
