"""CPU per line of the agent's line pipeline stages (no Kafka): the CRI and docker parsers and the
multi-line merger with the default built-in rules, on Loghub lines; the framing of CRI and docker lines and the
id + envelope of one-line events on the pure-Python and the native line path (agents/line_path.py). CPU time (process_time), best and
median of several runs, so a busy machine disturbs it less than wall time.

    python bench/agent_lines.py                                   # this tree
    git show main:agents/multiline.py > /tmp/ml_main.py
    python bench/agent_lines.py --multiline-module /tmp/ml_main.py   # another version of multiline.py
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import time

import orjson

from logtide.agents.parser.cri import CriParser
from logtide.agents.parser.docker import DockerParser

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("LOGTIDE_CORPUS") or os.path.join(
    os.path.dirname(os.path.dirname(HERE)), "shared", "corpus", "loghub"
)


def _cpu(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--multiline-module", help="a multiline.py to load instead of logtide.agents.multiline")
    args = ap.parse_args()
    texts = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*_2k.log"))):
        texts += open(path, encoding="utf-8", errors="replace").read().splitlines()
    if not texts:
        raise SystemExit(f"no Loghub corpus at {CORPUS} (set LOGTIDE_CORPUS)")
    texts = (texts * (args.lines // len(texts) + 1))[: args.lines]
    cri_lines = [b"2024-05-01T12:00:00.%09dZ stdout F " % i + t.encode() for i, t in enumerate(texts)]
    docker_lines = [
        orjson.dumps({"log": t + "\n", "stream": "stdout", "time": "2024-05-01T12:00:00.000000001Z"}) for t in texts
    ]
    if args.multiline_module:
        spec = importlib.util.spec_from_file_location("multiline_under_test", args.multiline_module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        merger_class = module.MultilineMerger
    else:
        from logtide.agents.multiline import LANGUAGES, MultilineMerger as merger_class
    languages = list(LANGUAGES) if not args.multiline_module else ["java", "python", "go"]

    def multiline():
        add = merger_class(languages).add
        for i, text in enumerate(texts):
            add(i, i + 1, None, "stdout", text, False, False, 0.0)

    def parse(parser, lines):
        def run():
            p = parser.parse
            for line in lines:
                p(line)

        return run

    # the line path's two halves on each implementation (agents/line_path.py): framing a chunk of CRI
    # lines (parse, timestamp, UTF-8), and the id + envelope JSON of one-line events
    from logtide import envelope
    from logtide.agents import line_path
    from logtide.agents.file_identity import FileIdentity
    from logtide.agents.tracked_file import TrackedFile

    template = envelope.EventTemplate(
        source="k8s",
        attributes={"log.iostream": "stdout", "log.file.path": "/p/0.log"},
        resource={"k8s.namespace.name": "bench", "k8s.pod.name": "app-0"},
    )
    ident = TrackedFile.__new__(TrackedFile)
    ident.set_identity(FileIdentity(2049, 1234567, "f" * 32, 64, 0))

    def frame_python():
        for _ in line_path.frame_lines(CriParser().parse, cri_lines, 1 << 18):
            pass

    def frame_docker_python():
        for _ in line_path.frame_lines(DockerParser().parse, docker_lines, 1 << 18):
            pass

    def envelope_python():
        record, event_id = template.record, ident.event_id
        for i, text in enumerate(texts):
            record(event_id(i), 1, 2, 3, text)

    stages = [
        ("cri_parse", parse(CriParser(), cri_lines)),
        ("docker_parse", parse(DockerParser(), docker_lines)),
        ("multiline", multiline),
        ("frame_cri_python", frame_python),
        ("frame_docker_python", frame_docker_python),
        ("id_envelope_python", envelope_python),
    ]
    native = line_path.NATIVE
    if native is not None:

        def envelope_native():
            record, prefix, tail = native.record, ident.id_prefix, template.tail
            for i, text in enumerate(texts):
                record(prefix, i, 1, 2, 3, text, tail)

        stages += [
            ("frame_cri_native", lambda: native.frame(1, cri_lines, 1 << 18)),
            ("frame_docker_native", lambda: native.frame(2, docker_lines, 1 << 18)),
            ("id_envelope_native", envelope_native),
        ]
    result = {"lines": len(texts), "runs": args.runs, "multiline_module": args.multiline_module or "this tree"}
    for name, fn in stages:
        ts = _cpu(fn, args.runs)
        result[name] = {
            "best_ns_per_line": round(ts[0] * 1e9 / len(texts)),
            "median_ns_per_line": round(ts[len(ts) // 2] * 1e9 / len(texts)),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
