"""Notification and annotation templates: Jinja2 in an immutable sandbox.

Templates see plain data only: ``alert`` (the first alert of the group), ``alerts``, ``group``
(status, receiver, groupLabels, commonLabels, commonAnnotations, externalURL), ``events`` (a few
sample events of the first alert) and, in annotations, ``labels`` and ``value``. The sandbox stops
attribute access to Python internals (``__class__``, ``__globals__`` …), mutation of the data and
huge ranges; output is cut to ``max_length``. A template that fails to render (syntax error,
undefined name, sandbox violation) gives a plain fallback message and is counted in
``logtide_alerting_template_errors_total``.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from pydantic import AfterValidator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from logtide import log

from logtide.alerting import metrics

_log = log.get("alerting.templates")

DEFAULT_TITLE = (
    "[{{ group.status | upper }}{% if group.status == 'firing' %}:{{ group.firing | length }}"
    "{% endif %}] {{ group.commonLabels.alertname | default('alerts') }}"
    "{% for k, v in group.groupLabels | dictsort %}{% if k != 'alertname' %} {{ k }}={{ v }}{% endif %}"
    "{% endfor %}"
)
DEFAULT_TEXT = (
    "{% for a in alerts %}• {{ a.status | upper }} {{ a.labels.alertname }}"
    "{% if a.annotations.summary %}: {{ a.annotations.summary }}{% endif %}"
    " ({{ a.labels | dictsort | rejectattr(0, 'equalto', 'alertname') | map('join', '=') | join(' ') }})"
    "{{ '\\n' }}{% endfor %}"
    "{% if events %}sample: {{ events[-1].body | string | truncate(300) }}{% endif %}"
)


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )


_CHECKER = _environment()


def check_template(text: str) -> str:
    """Compile a template (config validation: a broken one is refused at load, with file:line, never
    sent raw to on-call at the first alert)."""
    try:
        _CHECKER.parse(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template does not compile: {exc.message} (template line {exc.lineno})") from None
    return text


#: A pydantic field type for template text, compiled when the config or rules file is loaded.
Template = Annotated[str, AfterValidator(check_template)]


class Templates:
    def __init__(self, max_length: int = 4000):
        self.env = _environment()
        self.max_length = max_length
        self._compiled = functools.lru_cache(maxsize=512)(self.env.from_string)

    def render(self, text: str, context: dict[str, Any]) -> str:
        """Render; raise TemplateError/SecurityError on failure (callers fall back)."""
        out = self._compiled(text).render(**context)
        return out if len(out) <= self.max_length else out[: self.max_length - 1] + "…"

    def render_or(self, text: str, context: dict[str, Any], fallback: str, who: str) -> str:
        try:
            return self.render(text, context)
        except (
            TemplateError,
            SecurityError,
            TypeError,
            ValueError,
            ArithmeticError,
            AttributeError,
            KeyError,
            IndexError,
            RecursionError,
        ) as exc:
            metrics.TEMPLATE_ERRORS.labels(who).inc()
            _log.warning(
                "template failed, sending the plain fallback",
                extra={"receiver": who, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            return fallback

    def annotations(self, ann: dict[str, str], ctx: dict[str, Any]) -> dict[str, str]:
        out = {}
        for k, v in ann.items():
            out[k] = self.render_or(v, ctx, v, "annotations") if ("{{" in v or "{%" in v) else v
        return out


def context(notification, external_url: str = "") -> dict[str, Any]:
    """Plain data for a notification's templates."""
    payload = notification.payload(external_url)
    alerts = payload["alerts"]
    firing = [a for a in alerts if a["status"] == "firing"]
    group = {
        k: payload[k]
        for k in ("status", "receiver", "groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL")
    }
    group["firing"] = firing
    group["resolved"] = [a for a in alerts if a["status"] == "resolved"]
    first = notification.alerts[0] if notification.alerts else None
    return {
        "group": group,
        "alerts": alerts,
        "alert": alerts[0] if alerts else {},
        "events": list(first.samples) if first is not None else [],
    }


def fallback_text(notification) -> str:
    """The plain message sent when a template fails: status, alert names and labels, no template."""
    lines = [
        f"[{notification.status.upper()}] {notification.common_labels.get('alertname', 'alerts')} "
        f"({len(notification.firing)} firing, {len(notification.resolved)} resolved)"
    ]
    for a in notification.alerts[:20]:
        labels = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        lines.append(f"- {a.state} {labels}")
    return "\n".join(lines)
