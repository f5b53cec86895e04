"""The Dockerfile the chart's image is built from: slim, non-root with the chart's uid, the package
installed, a build context that keeps every package. (No container runtime here: checked statically.)"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib.metadata import entry_points

import yaml

from helm_support import CHART, ROOT, full_values, render

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    ins = _instructions()
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last_from:]


def test_final_image_is_slim_and_runs_as_the_charts_user():
    stage = _final_stage()
    base = stage[0][1]
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim(-\w+)?", base), base
    users = [rest for op, rest in stage if op == "USER"]
    assert users, "the final stage must switch to an unprivileged user"
    uid, _, gid = users[-1].partition(":")
    values = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert (int(uid), int(gid)) == (values["runAsUser"], values["runAsGroup"]), "image user != chart runAsUser"
    assert int(uid) != 0
    # no compilers or build tools copied into the runtime stage: only the venv
    copies = [rest for op, rest in stage if op == "COPY"]
    assert copies == ["--from=build /opt/logtide /opt/logtide"]


def test_entrypoint_and_port_match_the_chart():
    stage = dict((op, rest) for op, rest in _final_stage())
    assert stage["ENTRYPOINT"] == '["logtide"]'
    port = yaml.safe_load((CHART / "values.yaml").read_text())["http"]["port"]
    assert stage["EXPOSE"] == str(port)


def test_package_is_installed_not_copied_as_source():
    runs = " ".join(rest for op, rest in _instructions() if op == "RUN")
    assert "pip install -r /tmp/requirements.txt" in runs and "pip install --no-deps ." in runs
    assert "logtide --help" in runs, "the build proves the console script works"
    assert not re.search(r"curl|wget|ADD\s+http", DOCKERFILE), "nothing downloaded outside pip"


def test_build_context_keeps_every_package():
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p.replace("**/", "")) for p in ignore
        )

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = sorted(set(project["tool"]["setuptools"]["package-dir"].values()))
    for needed in ["pyproject.toml", "README.md", *packages]:
        assert not ignored(needed), f".dockerignore drops {needed}, which the image needs"
    folders = {pkg: folder for pkg, folder in project["tool"]["setuptools"]["package-dir"].items()}
    for module in {".".join(ep.value.split(":")[0].split(".")[:2]) for ep in entry_points(group="logtide.commands")}:
        assert not ignored(folders[module]), f".dockerignore drops {folders[module]}, an entry point's package"
    assert ignored("tests") and ignored(".git") and ignored("bench")


def test_every_command_the_chart_runs_is_a_logtide_subcommand():
    commands = {ep.name for ep in entry_points(group="logtide.commands")}
    used = {w["spec"]["template"]["spec"]["containers"][0]["args"][0] for w in render(full_values()).workloads()}
    assert used == {"agent", "collect", "process", "sink", "alert"}
    assert used <= commands, f"the chart runs commands logtide does not have: {used - commands}"
