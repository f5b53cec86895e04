"""Run every benchmark in bench/ and print one table of the headline figures.

    python bench/run_all.py                 # every bench with its recorded (full) settings, ~15-25 min
    python bench/run_all.py --quick         # reduced sizes, ~5 min; the recorded results are kept
    python bench/run_all.py --only scale,e2e
    python bench/run_all.py --summarize     # no runs: the table from the results already in bench/results/

Each bench runs as its own process, one after the other (the machine has 2 shared cores: running them
together would measure each other). Writes bench/results/all.json (the table, each command, exit code
and duration) and regenerates the summary table at the top of bench/RESULTS.md (between the
`summary` markers; the sections below it are the benches' own and are not touched). With --quick the
benches' own bench/results/<name>.json files are put back afterwards: a quick run checks that
everything still runs, it does not replace recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MARK_START, MARK_END = "<!-- summary:start (bench/run_all.py) -->", "<!-- summary:end -->"

#: bench name → (full arguments, quick arguments); a bench/*.py not listed here runs without arguments.
ARGS = {
    "transport": ([], ["--scale", "0.1", "--repeat", "1"]),
    "agent": ([], ["--lines", "20000"]),
    "processor": ([], ["--events", "20000", "--rounds", "1"]),
    "scale": ([], ["--events", "20000", "--rounds", "1"]),
    "sinks": ([], ["--events", "5000", "--rounds", "1"]),
    "alerting": ([], ["--seconds", "6"]),
    "e2e": ([], ["--seconds", "8"]),
    "collectors": ([], ["--scale", "0.1"]),
    "day2_tools": ([], ["--records", "20000"]),
}
ORDER = list(ARGS)


def _n(x, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "–"


# --- one summarizer per bench: its JSON → rows (what, figure, compared with, ratio) ---------------


def s_transport(d):
    for r in d["rows"]:
        yield (
            f"transport {r['backend']} {r['op']}",
            f"{_n(r['logtide_per_s'])} rec/s",
            "raw client",
            _ratio(r["logtide_per_s"], r["raw_per_s"]),
        )


def s_agent(d):
    yield (
        "agent: CRI files → Kafka",
        f"{_n(d['agent']['per_s'])} lines/s",
        "raw producer, same lines",
        _ratio(d["agent"]["per_s"], d["raw"]["per_s"]),
    )
    if "floor" in d:
        yield (
            "agent floor: the contract's least work per line",
            f"{_n(d['floor']['per_s'])} lines/s",
            "raw producer, same lines",
            _ratio(d["floor"]["per_s"], d["raw"]["per_s"]),
        )
    yield ("agent peak RSS", f"{_n(d['agent']['peak_rss_mb'], 1)} MB", "", "")


def s_processor(d):
    med = d["median"]
    yield (
        "processor reference pipeline",
        f"{_n(med['logtide'])} events/s",
        "passthrough",
        _ratio(med["logtide"], med.get("passthrough")),
    )
    if med.get("floor"):
        yield (
            "processor floor: the pipeline's least work per event",
            f"{_n(med['floor'])} events/s",
            "passthrough",
            _ratio(med["floor"], med.get("passthrough")),
        )
    if med.get("quix"):
        yield (
            "processor vs Quix Streams",
            f"{_n(med['quix'])} events/s (Quix)",
            "logtide / Quix",
            _ratio(med["logtide"], med["quix"]),
        )


def s_scale(d):
    best = d["best"]
    one, two = best.get("1") or best.get(1), best.get("2") or best.get(2)
    yield (
        "scale: 2 processor replicas",
        f"{_n(two['events_per_s'])} events/s",
        f"1 replica: {_n(one['events_per_s'])}/s",
        f"{d['ratio_2_over_1']:.2f}",
    )


def s_sinks(d):
    for sink, r in d["write_path"].items():
        yield (
            f"sink {sink} write path",
            f"{_n(r['ours_eps'])} events/s",
            "baseline writer" if r.get("baseline_eps") else "",
            f"{r['ratio']:.2f}" if r.get("ratio") else "–",
        )


def s_latency(label):
    def summarize(d):
        for r in d["results"]:
            yield (
                f"{label} at {_n(r['target_rate'])}/s",
                f"p50 {r['p50_s']:.2f} s, p99 {r['p99_s']:.2f} s",
                f"{r['notified']}/{r['probes']} probes notified",
                "",
            )

    return summarize


def s_collectors(d):
    cw, sf = d["cloudwatch"], d["salesforce"]
    yield (
        "collector CloudWatch",
        f"{_n(cw['collector_events_per_s'])} events/s",
        "raw boto3 read",
        _ratio(cw["collector_events_per_s"], cw["raw_events_per_s"]),
    )
    yield (
        "collector Salesforce",
        f"{_n(sf['collector_rows_per_s'])} rows/s",
        "raw blob read",
        _ratio(sf["collector_rows_per_s"], sf["raw_rows_per_s"]),
    )


def s_day2(d):
    yield (
        "replay (day-2 tools)",
        f"{_n(d['records'] / d['replay_s'])} rec/s",
        "raw copy",
        f"{d['replay_vs_raw_speed']:.2f}",
    )


SUMMARIZE = {
    "transport": s_transport,
    "agent": s_agent,
    "processor": s_processor,
    "scale": s_scale,
    "sinks": s_sinks,
    "alerting": s_latency("alerting: Kafka → webhook"),
    "e2e": s_latency("end to end: file line → webhook"),
    "collectors": s_collectors,
    "day2_tools": s_day2,
}


def summarize(name: str, path: Path) -> list[list[str]]:
    if not path.exists():
        return [[name, "no results", "", ""]]
    try:
        data = json.loads(path.read_text())
        rows = [list(r) for r in SUMMARIZE[name](data)] if name in SUMMARIZE else [[name, "ran", "", ""]]
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
        rows = [[name, f"results not understood ({type(exc).__name__}: {exc})", "", ""]]
    return rows


def discover() -> list[str]:
    found = sorted(p.stem for p in HERE.glob("*.py") if p.stem != "run_all" and not p.stem.startswith("_"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def run_one(name: str, quick: bool) -> dict:
    full, short = ARGS.get(name, ([], []))
    cmd = [sys.executable, str(HERE / f"{name}.py"), *(short if quick else full)]
    result_file = RESULTS / f"{name}.json"
    kept = result_file.read_bytes() if quick and result_file.exists() else None
    print(f"== {name}: {' '.join(['python', f'bench/{name}.py', *cmd[2:]])}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True)
    took = time.monotonic() - t0
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
    print("\n".join("   " + line for line in tail), flush=True)
    rows = (
        summarize(name, result_file) if proc.returncode == 0 else [[name, f"FAILED (exit {proc.returncode})", "", ""]]
    )
    if kept is not None:
        result_file.write_bytes(kept)
    return {
        "command": " ".join(["python", f"bench/{name}.py", *cmd[2:]]),
        "exit_code": proc.returncode,
        "seconds": round(took, 1),
        "rows": rows,
        **({"output_tail": tail} if proc.returncode else {}),
    }


def table(benches: dict) -> list[str]:
    lines = ["| what | figure | compared with | ratio |", "| --- | ---: | --- | ---: |"]
    for b in benches.values():
        for row in b["rows"]:
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines


def update_results_md(lines: list[str], when: str, how: str) -> None:
    md = HERE / "RESULTS.md"
    text = md.read_text() if md.exists() else "# Benchmark results\n"
    block = "\n".join(
        [
            MARK_START,
            "## Summary (all benches)",
            "",
            f"Generated by `{how}` at {when} from the recorded bench/results/*.json (each bench's "
            "own command is in its section; run them all with `python bench/run_all.py`). One line per headline "
            "figure; the ratio is logtide ÷ the named peer measured in the same run. 2 shared, "
            "noisy cores: see each section below for the setup and the spread between runs.",
            "",
            *lines,
            MARK_END,
        ]
    )
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:  # first time: right after the title paragraph
        title, _, body = text.partition("\n\n")
        text = title + "\n\n" + block + "\n\n" + body
    md.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced sizes; keep the recorded per-bench results")
    ap.add_argument("--only", help="comma-separated bench names")
    ap.add_argument("--skip", default="", help="comma-separated bench names not to run")
    ap.add_argument("--summarize", action="store_true", help="do not run: table from the existing results")
    args = ap.parse_args()
    names = discover()
    if args.only:
        unknown = set(args.only.split(",")) - set(names)
        if unknown:
            ap.error(f"unknown bench(es): {', '.join(sorted(unknown))} (have: {', '.join(names)})")
        names = [n for n in names if n in args.only.split(",")]
    names = [n for n in names if n not in args.skip.split(",")]
    previous = {}
    if (RESULTS / "all.json").exists():
        previous = json.loads((RESULTS / "all.json").read_text()).get("benches", {})
    benches = {}
    for name in names:
        if args.summarize:
            last = {k: v for k, v in previous.get(name, {}).items() if k != "rows"}
            benches[name] = {"rows": summarize(name, RESULTS / f"{name}.json"), **({"last_run": last} if last else {})}
        else:
            benches[name] = run_one(name, args.quick)
    merged = {**previous, **benches}
    merged = {n: merged[n] for n in discover() if n in merged}
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = table(merged)
    print("\n" + "\n".join(lines))
    (RESULTS / "all.json").write_text(
        json.dumps(
            {
                "time": when,
                "quick": args.quick,
                "summarized_only": args.summarize,
                "loadavg": os.getloadavg()[0],
                "benches": merged,
            },
            indent=1,
        )
    )
    if not args.quick:
        update_results_md(lines, when, "python bench/run_all.py" + (" --summarize" if args.summarize else ""))
    failed = [n for n, b in benches.items() if b.get("exit_code")]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
