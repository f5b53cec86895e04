"""`logtide test TESTS.yaml …`: offline unit tests of pipelines and alert rules (no broker).

Each test feeds its input events through the pipeline (and alerting) built from the real configs,
then checks the outputs per route, the DLQ, the alerts and the notifications against its
expectations. A failure prints what differed as a diff; the exit code is 1 when any test failed and 2
when a file cannot be read (with ``file:line``). The format is described in tools/testing/spec.py and
shown in examples/tests/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from logtide.config import ConfigError

from logtide.tools.common import print_json
from logtide.tools.testing import spec
from logtide.tools.testing.expect import SpecError, check_items, event_getter, key_getter
from logtide.tools.testing.harness import Harness, Outcome

EPILOG = """examples:
  logtide test examples/tests/*.yaml
  logtide test examples/tests/pipeline.yaml -k redact --show     print what came out, to write expectations
  logtide test examples/tests/ --json                            every *.yaml in a folder; JSON report

A tests file:
  pipeline: ../process.yaml
  tests:
    - name: errors go to monitoring
      input: [{body: "db timeout", severity_text: ERROR}]
      expect:
        monitoring: [{severity_number: 17, body: {matches: timeout}}]
        audit: []
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="offline unit tests for pipelines and alert rules (TESTS.yaml)",
        description="Run pipeline and alert-rule unit tests offline: input events in, expected "
        "events per route, DLQ entries, alerts and notifications out. Exit 1 on failure.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="TESTS.yaml", help="test files, or folders of them")
    p.add_argument("-k", dest="keyword", metavar="TEXT", help="only tests whose name contains TEXT")
    p.add_argument("--show", action="store_true", help="also print each test's actual outputs")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=run)


def expand(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml")))
        else:
            out.append(p)
    if not out:
        raise ConfigError(f"no tests files in {', '.join(paths)}")
    return out


def check(test: spec.TestCase, outcome: Outcome) -> list[str]:
    """Failure lines of one test (empty: passed)."""
    failures: list[str] = []
    for route, expectation in test.expect.items():
        if route == "dlq":
            failures += check_items(expectation, outcome.dlq, _dlq_getter, "dlq")
        elif route == "unrouted":
            failures += check_items(expectation, outcome.unrouted, event_getter, "unrouted")
        elif route not in outcome.routes:
            failures.append(f"route {route!r} is not a sink of this pipeline (sinks: {', '.join(outcome.routes)})")
        else:
            failures += check_items(expectation, outcome.routes[route], event_getter, f"route {route}")
    if test.alerts is not None:
        failures += check_items(test.alerts, outcome.alerts, key_getter, "alerts")
    if test.notifications is not None:
        failures += check_items(test.notifications, outcome.notifications, key_getter, "notifications")
    return failures


def _dlq_getter(path: str):
    if path in ("stage", "error", "class"):
        return key_getter(path)
    inner = event_getter(path[len("event.") :] if path.startswith("event.") else path)
    return lambda item: inner(item["event"])


def run(args: argparse.Namespace) -> int:
    files = expand(args.files)
    report = []
    passed = failed = skipped = 0
    for path in files:
        tf = spec.load(path)
        harness = Harness(tf)
        results = []
        for test in tf.tests:
            if args.keyword and args.keyword not in test.name:
                continue
            where = f"{path}:{test.line}" if test.line else str(path)
            if test.skip:
                skipped += 1
                results.append({"name": test.name, "where": where, "status": "skipped", "reason": str(test.skip)})
                continue
            outcome = harness.run(test)
            try:
                failures = check(test, outcome)
            except SpecError as exc:
                raise ConfigError(f"{where}: test {test.name!r}: {exc}") from None
            status = "failed" if failures else "passed"
            passed += status == "passed"
            failed += status == "failed"
            entry = {"name": test.name, "where": where, "status": status, "failures": failures}
            if args.show:
                entry["outcome"] = {
                    "routes": outcome.routes,
                    "dlq": outcome.dlq,
                    "unrouted": outcome.unrouted,
                    "alerts": outcome.alerts,
                    "notifications": outcome.notifications,
                }
            results.append(entry)
        report.append({"file": str(path), "tests": results})
    if args.json:
        print_json({"passed": passed, "failed": failed, "skipped": skipped, "files": report})
    else:
        _print(report, args.show)
        print(f"\n{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


def _print(report: list[dict], show: bool) -> None:
    import yaml

    color = sys.stdout.isatty()
    red, green, dim, reset = ("\x1b[31m", "\x1b[32m", "\x1b[2m", "\x1b[0m") if color else ("", "", "", "")
    for f in report:
        for t in f["tests"]:
            if t["status"] == "skipped":
                print(f"{dim}SKIP{reset} {t['where']} {t['name']} ({t['reason']})")
                continue
            mark = f"{green}PASS{reset}" if t["status"] == "passed" else f"{red}FAIL{reset}"
            print(f"{mark} {t['where']} {t['name']}")
            for line in t["failures"]:
                if color and line.lstrip().startswith("-") and not line.lstrip().startswith("---"):
                    line = f"{red}{line}{reset}"
                elif color and line.lstrip().startswith("+") and not line.lstrip().startswith("+++"):
                    line = f"{green}{line}{reset}"
                print(f"    {line}")
            if show:
                dumped = yaml.safe_dump(t["outcome"], sort_keys=False, allow_unicode=True, width=120)
                print("\n".join("      " + line for line in dumped.splitlines()))
