"""`helm template` without a helm binary: render the chart with Helm's own Go SDK (helm-python-sdk).

  python helm/tools/render.py [-f values.yaml ...] [--set-json '{"kafka": {"bootstrap": "k:9092"}}']
                              [--name logtide] [--namespace logging] [--lint] > manifests.yaml

Values files merge left to right as with helm; values.schema.json is enforced; NOTES.txt goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1] / "logtide"


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--values", action="append", default=[], metavar="FILE")
    p.add_argument("--set-json", action="append", default=[], metavar="JSON", help="values as a JSON object")
    p.add_argument("--name", default="logtide")
    p.add_argument("--namespace", default="logging")
    p.add_argument("--lint", action="store_true", help="run helm lint (strict) instead of rendering")
    args = p.parse_args(argv)
    import helm_python as helm

    values: dict = {}
    for f in args.values:
        values = merge(values, yaml.safe_load(Path(f).read_text()) or {})
    for j in args.set_json:
        values = merge(values, json.loads(j))
    try:
        if args.lint:
            report = helm.lint(str(CHART), values, strict=True)
            for m in report["messages"]:
                print(f"[{('?', 'INFO', 'WARNING', 'ERROR')[m['severity']]}] {m['path']}: {m['error']}")
            return 1 if any(m["severity"] >= 2 for m in report["messages"]) or report.get("errors") else 0
        with helm.Chart.load(str(CHART)) as chart:
            files = chart.render(values, name=args.name, namespace=args.namespace)
    except helm.HelmError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    for name, text in sorted(files.items()):
        if name.endswith("NOTES.txt"):
            print(text, file=sys.stderr)
        elif text.strip():
            print(f"# Source: {name}\n{text.strip()}\n---")
    return 0


if __name__ == "__main__":
    sys.exit(main())
