"""`logtide sink`, `logtide audit verify|search` and `logtide query`."""

from __future__ import annotations

import argparse
import csv
import os
import sys

import orjson

from logtide.cli import UsageError
from logtide.role import add_role_arguments, run_role

SINK_EPILOG = """examples:
  logtide sink --config examples/sink.yaml
  logtide sink --config examples/sink.yaml --only audit --bootstrap kafka:9092
  LOGTIDE_AUDIT_KEY=k logtide sink --check --config examples/sink.yaml

Each sink named in the config (monitoring, audit, analytics) runs as a consumer group of
logtide.route.<sink>; offsets are committed only after the write is durable. /readyz is false
while a destination (S3, PostgreSQL, Loki) is unreachable and batches are being held.
"""

AUDIT_EPILOG = """examples:
  logtide audit verify /var/lib/logtide/audit --key-file /etc/logtide/audit.key
  logtide audit verify s3://audit-bucket/logtide --endpoint-url http://minio:9000
  logtide audit search /var/lib/logtide/audit --since 2026-11-21T00:00Z --until 2026-11-22 \\
      --where 'resource.service.name == "payments" and severity_number >= 17'

verify exits 0 when every chain is intact and the archive matches its signed index (_index/), 1 at
the first broken, missing or reordered record of a chain, or a partition, segment or time span that
is missing, extra or truncated against the index (each named), 2 on a usage error. The manifest key comes from --key-file or $LOGTIDE_AUDIT_KEY.
"""

QUERY_EPILOG = """examples:
  logtide query "SELECT source, count(*) FROM events GROUP BY 1" --path /var/lib/logtide/parquet
  logtide query "SELECT time, body FROM events WHERE severity_number >= 17 ORDER BY time DESC LIMIT 20"
  logtide query "SELECT attributes->>'$.user' AS user, count(*) FROM events GROUP BY 1" --format json
  logtide query "SELECT count(*) FROM events" --path s3://analytics-bucket/logtide

Views: events (one row per event id) and events_all (every stored row). Columns: id, time,
event_time, time_adjusted, observed_time, ingest_time, severity_text, severity_number, service,
namespace, body, attributes (JSON text), resource (map), routes, and the partitions source, date, hour.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sink",
        help="run the sinks (monitoring, audit, analytics) named in a config",
        description="Consume logtide.route.<sink> topics and write them to their destinations.",
        epilog=SINK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_role_arguments(p, config_required=True)
    p.add_argument("--only", metavar="NAMES", help="comma-separated subset of the configured sinks to run")
    p.set_defaults(func=run_sink)


def run_sink(args: argparse.Namespace) -> int:
    from logtide.processors.sinks.role import ROLE

    return run_role(ROLE, args)


# --- audit ----------------------------------------------------------------------------------


def register_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="verify or search the tamper-evident audit archive",
        description="Tools for the audit sink's archive (a directory or s3://bucket/prefix).",
        epilog=AUDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    for name, helptext in (
        ("verify", "check every hash chain and the signed manifests"),
        ("search", "print records by time range and condition (JSON lines)"),
    ):
        a = asub.add_parser(
            name,
            help=helptext,
            description=helptext,
            epilog=AUDIT_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        a.add_argument("location", metavar="PATH|s3://BUCKET/PREFIX")
        a.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, moto)")
        a.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        if name == "verify":
            a.add_argument("--key-file", metavar="FILE", help="HMAC key of the manifests (else $LOGTIDE_AUDIT_KEY)")
            a.add_argument("--json", action="store_true", help="print one JSON report per chain")
            a.set_defaults(func=run_verify)
        else:
            a.add_argument(
                "--since",
                metavar="TIME",
                help="RFC 3339, Unix seconds, now, or a time ago: 1h, 2h ago (or --since=-1h); inclusive",
            )
            a.add_argument("--until", metavar="TIME", help="RFC 3339, Unix seconds, now, or a time ago (exclusive)")
            a.add_argument("--where", metavar="CONDITION", help="condition on the event, e.g. 'severity_number >= 17'")
            a.add_argument("--limit", type=int, metavar="N")
            a.set_defaults(func=run_search)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _archive(args):
    from logtide.processors.sinks.audit.storage import StorageError, open_archive

    try:
        return open_archive(args.location, endpoint_url=args.endpoint_url, region=args.region)
    except StorageError as exc:
        raise UsageError(str(exc)) from None


def _key(args) -> bytes | None:
    if args.key_file:
        try:
            with open(args.key_file, "rb") as f:
                return f.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read key file {args.key_file}: {exc.strerror}") from None
    env = os.environ.get("LOGTIDE_AUDIT_KEY")
    return env.encode() if env else None


def run_verify(args: argparse.Namespace) -> int:
    from logtide.processors.sinks.audit.storage import StorageError
    from logtide.processors.sinks.audit.verify import verify_archive, verify_archive_index

    archive = _archive(args)
    try:
        index = verify_archive_index(archive, _key(args))
        reports = verify_archive(archive, _key(args))
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    if not reports and index.ok:
        raise UsageError(f"{args.location}: no audit chains found")
    if args.json:
        print(orjson.dumps(index.as_dict()).decode())
    else:
        print(f"{'OK    ' if index.ok else 'BROKEN'} archive index: {index.segments} index files")
        for w in index.warnings:
            print(f"       warning: {w}")
        for p in index.problems:  # each names a partition, segment or time span: all of them
            print(f"       problem: {p}")
    for r in reports:
        if args.json:
            print(orjson.dumps(r.as_dict()).decode())
            continue
        state = "OK    " if r.ok else "BROKEN"
        print(f"{state} {r.chain}: {r.records} records in {r.segments} segments")
        for w in r.warnings:
            print(f"       warning: {w}")
        if r.problems:
            print(f"       first problem: {r.problems[0]}")
    return 0 if index.ok and all(r.ok for r in reports) else 1


def run_search(args: argparse.Namespace) -> int:
    from logtide.condition import ConditionError
    from logtide.processors.sinks.audit.search import search
    from logtide.processors.sinks.audit.storage import StorageError
    from logtide.timeutil import parse_time_expr

    try:
        since = parse_time_expr(args.since) if args.since else None
        until = parse_time_expr(args.until) if args.until else None
    except ValueError as exc:
        raise UsageError(f"bad time: {exc}") from None
    n = 0
    try:
        for hit in search(_archive(args), since_ns=since, until_ns=until, where=args.where, limit=args.limit):
            sys.stdout.write(orjson.dumps(hit).decode() + "\n")
            n += 1
    except ConditionError as exc:
        raise UsageError(f"--where: {exc}") from None
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    print(f"{n} records", file=sys.stderr)
    return 0


# --- query ----------------------------------------------------------------------------------


def register_query(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "query",
        help="run SQL (DuckDB) over the analytics Parquet dataset",
        description="Run one SQL statement with DuckDB over the analytics sink's Parquet files.",
        epilog=QUERY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sql", metavar="SQL")
    p.add_argument(
        "--path",
        default=os.environ.get("LOGTIDE_PARQUET_PATH", "./parquet"),
        help="root of the Parquet dataset, a directory or s3://bucket/prefix "
        "(default $LOGTIDE_PARQUET_PATH or ./parquet)",
    )
    p.add_argument("--endpoint-url", help="S3-compatible endpoint when --path is s3://bucket/prefix")
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=run_query_command)


def run_query_command(args: argparse.Namespace) -> int:
    import duckdb

    from logtide.processors.sinks.analytics.query import run_query

    import pyarrow as pa

    if not args.path.startswith("s3://") and not os.path.isdir(args.path):
        raise UsageError(f"{args.path}: no such directory (pass --path to the Parquet dataset)")
    try:
        cols, rows = run_query(args.path, args.sql, endpoint_url=args.endpoint_url, region=args.region)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {str(exc).splitlines()[0]}") from None
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"cannot read {args.path}: {exc}") from None
    if args.format == "json":
        for row in rows:
            sys.stdout.write(orjson.dumps(dict(zip(cols, row)), default=str).decode() + "\n")
    elif args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        _print_table(cols, rows)
    return 0


def _print_table(cols: list[str], rows: list[tuple]) -> None:
    text = [[("" if v is None else str(v)).replace("\n", "\\n")[:80] for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in text:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"({len(rows)} rows)", file=sys.stderr)
