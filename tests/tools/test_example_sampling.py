"""The shipped example pipeline (examples/process.yaml) over the whole Loghub corpus, offline through
the processor's own pipeline code: only debug/trace events (severity 1-8) are sampled; events without a
level (severity 0) and everything from INFO up all survive. Prints the share of each file that survives."""

from __future__ import annotations

import os

from logtide import envelope

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROCESS = os.path.join(ROOT, "examples", "process.yaml")


def pipeline(without_sampling: bool = False):
    from logtide.processors.app import load
    from logtide.processors.pipeline import Pipeline
    from logtide.processors.steps import StepContext

    config = load(PROCESS)
    entries = [e for e in config.pipeline if not (without_sampling and e.get("type") == "sample")]
    return Pipeline.from_config(entries, StepContext(sinks=tuple(config.sinks), component="test"), PROCESS)


def events(path: str) -> list[dict]:
    name = os.path.basename(path).split("_")[0]
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    return [
        envelope.decode(
            envelope.encode(
                envelope.new_event(
                    id=envelope.make_id("corpus", name, i),
                    body=ln,
                    source="file",
                    resource={"service.name": name.lower()},
                )
            )
        )
        for i, ln in enumerate(lines)
    ]


def test_example_samples_only_debug_and_trace_over_the_corpus(corpus_dir):
    shipped, reference = pipeline(), pipeline(without_sampling=True)
    files = sorted(f for f in os.listdir(corpus_dir) if f.endswith(".log"))
    assert len(files) >= 16
    total = kept_total = debug_total = debug_kept = 0
    report = []
    for name in files:
        evs = events(os.path.join(corpus_dir, name))
        severity = {}
        for ev in evs:
            for out, _ in reference.run(dict(ev)):
                severity[out["id"]] = out["severity_number"]
        survived = {out["id"] for ev in evs for out, sinks in shipped.run(dict(ev)) if sinks}
        debug = {i for i, s in severity.items() if 1 <= s <= 8}
        others = set(severity) - debug
        assert others <= survived, f"{name}: {len(others - survived)} events without a debug level were sampled away"
        total += len(evs)
        kept_total += len(survived)
        debug_total += len(debug)
        debug_kept += len(debug & survived)
        report.append(f"{name:20} {len(survived) / len(evs):7.1%} kept  ({len(debug)} debug/trace)")
    print("\n" + "\n".join(report))
    # Files without levels (OpenSSH, Linux, BGL's own words aside) survive whole.
    for name in ("OpenSSH_2k.log", "Linux_2k.log", "Proxifier_2k.log"):
        assert any(r.startswith(name) and " 100.0% kept" in r for r in report), report
    # Of the debug/trace events, about a tenth survives (the same tenth every run: sampling by id).
    assert debug_total >= 100, "the corpus should hold debug lines to sample"
    assert 0.05 <= debug_kept / debug_total <= 0.15
    assert kept_total == total - debug_total + debug_kept
