"""The wheel holds logtide/ alone at top level; the role folders install inside it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    listed = set(SETUPTOOLS["packages"])
    for package, folder in SETUPTOOLS["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *rel.parts])
            assert name in listed, f"{init.parent} has an __init__.py but {name} is not in pyproject's packages"


@pytest.mark.timeout(240)
def test_wheel_top_level_is_logtide_alone(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("logtide-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"logtide", next(t for t in top if t.endswith(".dist-info"))}, top
    for module in (
        "logtide/agents/agent.py",
        "logtide/collectors/cloudwatch/collector.py",
        "logtide/processors/sinks/audit/writer.py",
        "logtide/alerting/engine.py",
        "logtide/tools/replay.py",
        "logtide/tools/testing/cli.py",
    ):
        assert module in names, module
