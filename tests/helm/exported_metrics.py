"""List every logtide_* metric the project defines: import all modules of its packages, then read
prometheus_client's default registry. `python tests/helm/exported_metrics.py` prints a table;
`--json` prints {"families": {name: type}, "import_errors": [...]} for the dashboard tests.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The project's top packages: the kernel and the role folders it installs inside it (folder -> package).
PACKAGES = {
    "logtide": "logtide",
    "agents": "logtide.agents",
    "collectors": "logtide.collectors",
    "processors": "logtide.processors",
    "alerting": "logtide.alerting",
    "tools": "logtide.tools",
}


def import_all() -> list[str]:
    sys.path.insert(0, str(ROOT))
    errors = []
    for folder, package in PACKAGES.items():
        if not (ROOT / folder / "__init__.py").exists():
            continue
        try:
            pkg = importlib.import_module(package)
        except Exception:
            errors.append(f"{package}: {traceback.format_exc(limit=1).strip().splitlines()[-1]}")
            continue
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # `python -m` entry points run the CLI when imported
            try:
                importlib.import_module(info.name)
            except Exception:
                errors.append(f"{info.name}: {traceback.format_exc(limit=1).strip().splitlines()[-1]}")
    return errors


def families() -> dict[str, str]:
    from prometheus_client import REGISTRY

    out = {}
    for family in REGISTRY.collect():
        if family.name.startswith("logtide_"):
            out[family.name] = family.type
    return out


def main() -> int:
    errors = import_all()
    found = families()
    if "--json" in sys.argv:
        print(json.dumps({"families": found, "import_errors": errors}))
        return 0
    for name, kind in sorted(found.items()):
        print(f"{kind:<10} {name}")
    for e in errors:
        print(f"import error: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
