"""Inhibition, as in Alertmanager: a firing alert matching ``source_matchers`` mutes alerts
matching ``target_matchers`` that have the same values for the ``equal`` labels (e.g. a
cluster-down alert mutes the per-service alerts of that cluster). An alert never inhibits itself."""

from __future__ import annotations

from pydantic import Field

from logtide.config import Model

from logtide.alerting.matchers import MatcherField, matches_all


class InhibitRule(Model):
    source_matchers: list[MatcherField]
    target_matchers: list[MatcherField]
    equal: list[str] = Field(default_factory=list)


class Inhibitor:
    def __init__(self, rules: list[InhibitRule]):
        self.rules = rules

    def inhibited(self, labels: dict[str, str], fp: str, firing: list[tuple[str, dict[str, str]]]) -> bool:
        """``firing``: (fingerprint, labels) of every firing alert."""
        return self.inhibited_by(labels, fp, firing) is not None

    def inhibited_by(self, labels: dict[str, str], fp: str, firing: list[tuple[str, dict[str, str]]]) -> str | None:
        """The fingerprint of a firing alert that inhibits this one, if any."""
        for r in self.rules:
            if not matches_all(r.target_matchers, labels):
                continue
            for sfp, slabels in firing:
                if sfp == fp or not matches_all(r.source_matchers, slabels):
                    continue
                if all(slabels.get(k, "") == labels.get(k, "") for k in r.equal):
                    return sfp
        return None
