"""The `slipway` command.

Client commands (the public API only): `upload`, `status`, `events`, `token`.
Operator commands (the database directly): `migrate`, `replay`, `verify`, `stats`; and
`dlq redrive` (the queues, with the AWS credentials of the environment).

Settings come from the environment: SLIPWAY_API_URL and SLIPWAY_TOKEN (or, for the local
stack, SLIPWAY_JWT_SECRET to mint a token), DATABASE_URL for operator commands; when a
`.slipway/local.env` written by `make up` is found (here or above), it fills the gaps.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_ERROR = 2


def _load_local_env() -> None:
    named = os.environ.get("SLIPWAY_ENV_FILE")
    candidates = (
        [Path(named)]
        if named
        else [d / ".slipway" / "local.env" for d in (Path.cwd(), *Path.cwd().parents)]
    )
    for path in candidates:
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and key and key not in os.environ:
                    os.environ[key] = value
            return


def _token(
    user: str | None = None, scopes: tuple[str, ...] = (), ttl_seconds: int | None = None
) -> str:
    from slipway.auth import issue_token

    if user is None and not scopes and os.environ.get("SLIPWAY_TOKEN"):
        return os.environ["SLIPWAY_TOKEN"]
    secret = os.environ.get("SLIPWAY_JWT_SECRET")
    if not secret:
        raise SystemExit("error: set SLIPWAY_TOKEN (or SLIPWAY_JWT_SECRET to mint one locally)")
    name = user or os.environ.get("SLIPWAY_USER") or getpass.getuser()
    try:
        return issue_token(name, scopes, ttl_seconds, secret=secret)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def _client(scopes: tuple[str, ...] = ()) -> Any:
    from slipway.client import Client

    url = os.environ.get("SLIPWAY_API_URL")
    if not url:
        raise SystemExit("error: set SLIPWAY_API_URL (or run `make up` for the local stack)")
    return Client(url, _token(scopes=scopes))


# --- client commands -------------------------------------------------------------------------


def cmd_upload(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from slipway.client import ResumeBook

    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return EXIT_ERROR
    client = _client()
    book = ResumeBook.default()
    resume_id = args.resume or book.get(path)
    if resume_id:
        print(f"resuming upload {resume_id}", file=sys.stderr)
    bar = tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=path.name,
        disable=args.quiet,
        dynamic_ncols=True,
    )
    try:
        upload_id = client.upload_file(
            path,
            args.kind,
            content_type=args.content_type,
            parallel=args.parallel,
            progress=bar.update,
            resume=book,
            resume_id=resume_id,
            declare_sha256=args.verify_sha256,
        )
    except KeyboardInterrupt:
        bar.close()
        pending = book.get(path)
        hint = f"slipway upload --resume {pending} {path}" if pending else "run it again"
        print(f"\ninterrupted; to resume: {hint}", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(upload_id)
    if not args.wait:
        return 0
    return _follow(client, upload_id, args.timeout)


def _follow(client: Any, upload_id: str, timeout: float) -> int:
    """Wait for the upload, then its job, printing each change of state."""
    seen: set[str] = set()

    def say(text: str) -> None:
        if text not in seen:
            seen.add(text)
            print(text, file=sys.stderr)

    def watch(
        fetch: Callable[[], dict[str, Any]],
        label: Callable[[dict[str, Any]], str],
        done: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any]:
        def check(current: dict[str, Any]) -> bool:
            say(label(current))
            return done(current)

        result: dict[str, Any] = client.wait_until(fetch, check, timeout=timeout, interval=1)
        return result

    upload = watch(
        lambda: client.upload(upload_id),
        lambda u: f"upload {u['state']}",
        lambda u: u["state"] != "pending",
    )  # finalise needs it settled
    if upload["state"] == "failed":
        print(json.dumps(upload["error"]), file=sys.stderr)
        return EXIT_FAILED
    if upload["kind"] == "slide":
        slide = watch(
            lambda: client.slide(upload_id),
            lambda s: f"tiling {s['status']}",
            lambda s: s["status"] in ("SUCCEEDED", "FAILED"),
        )
        print(json.dumps(slide, indent=2))
        return 0 if slide["status"] == "SUCCEEDED" else EXIT_FAILED
    session_id = client.finalise(upload_id)["sessionId"]
    session = watch(
        lambda: client.session_of(session_id),
        lambda s: f"session {s['status']}",
        lambda s: s["status"] != "processing",
    )
    print(json.dumps(session, indent=2))
    return 0 if session["status"] == "ready" else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from slipway.client import ApiError

    client = _client()
    for fetch in (client.upload, client.job, client.session_of):
        try:
            print(json.dumps(fetch(args.id), indent=2))
            return 0
        except ApiError as exc:
            if exc.status != 404:
                raise
    print(f"error: no upload, job or session {args.id} of yours", file=sys.stderr)
    return EXIT_FAILED


JOB_COLUMNS = ("jobId", "type", "status", "attemptCount", "uploadId", "createdAt", "error")


def _job_cell(job: dict[str, Any], column: str) -> str:
    value = job.get(column)
    if column == "attemptCount":
        return f"{value}/{job['maxAttempts']}"
    if column == "error":
        return value["code"] if value else ""
    return "" if value is None else str(value)


def cmd_jobs(args: argparse.Namespace) -> int:
    client = _client()
    if args.action in ("retry", "cancel"):
        act = client.retry_job if args.action == "retry" else client.cancel_job
        print(json.dumps(act(args.id), indent=2))
        return 0
    rows, cursor = [], None
    while True:  # every page: the CLI shows the whole list
        page = client.jobs(
            status=args.status, job_type=args.type, upload_id=args.upload, limit=100, cursor=cursor
        )
        rows += [[_job_cell(j, c) for c in JOB_COLUMNS] for j in page["jobs"]]
        cursor = page["next"]
        if not cursor:
            break
    header = ["ID", "TYPE", "STATUS", "ATTEMPTS", "UPLOAD", "CREATED", "ERROR"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    """One JSON line per dead-letter queue: its sources, counts and what was moved."""
    from slipway import dlq

    queues = dlq.dead_letter_queues() if args.dry_run else dlq.redrive(args.method, args.timeout)
    for queue in queues:
        print(json.dumps(queue.summary()))
    return EXIT_FAILED if any(q.left for q in queues) else 0


def cmd_events(args: argparse.Namespace) -> int:
    client = _client(scopes=("events:read",))
    since = args.since
    while True:
        page = client.events(since, 500, wait=25 if args.follow else None)
        for event in page["events"]:
            print(json.dumps(event))
        since = page["next"]
        if not args.follow:
            return 0


def cmd_token(args: argparse.Namespace) -> int:
    print(_token(args.user, tuple(args.scope), args.ttl))
    return 0


# --- operator commands ------------------------------------------------------------------------


def _database() -> Any:
    import psycopg
    from psycopg.rows import dict_row

    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("error: set DATABASE_URL")
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def cmd_migrate(args: argparse.Namespace) -> int:
    from slipway.db import migrate

    with _database() as conn:
        applied = migrate(conn, Path(args.dir))
    print("applied: " + (", ".join(applied) or "nothing (up to date)"))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from slipway.projections import replay

    with _database() as conn:
        stats = replay.rebuild(conn, args.schema)
    rate = stats.events / stats.seconds if stats.seconds else 0
    print(
        f"replayed {stats.events} events in {stats.seconds:.2f} s ({rate:,.0f}/s) into "
        f"schema {args.schema}: " + ", ".join(f"{t} {n}" for t, n in stats.rows.items())
    )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from slipway import stats

    if not 1 <= args.hours <= stats.MAX_HOURS:
        print(f"error: --hours must be between 1 and {stats.MAX_HOURS}", file=sys.stderr)
        return EXIT_ERROR
    with _database() as conn:
        figures = stats.snapshot(conn, args.hours)
    print(json.dumps(figures, indent=2) if args.json else stats.as_text(figures))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    os.environ.setdefault("SLIPWAY_DB_POOL_MAX", "2")
    from slipway import verification

    checked = (args.sample or None) if args.blobs else 0
    report = verification.run(blobs_checked=checked)
    summary = report.summary()
    print(json.dumps(summary, indent=2))
    if report.ok:
        print(f"ok: the log is intact and explains every row ({summary['events']} events)")
        if report.blob_audit:
            print(f"ok: {report.blob_audit.checked} blobs hold the bytes their keys name")
        return 0
    print("PROBLEMS FOUND: see chainProblems / differences / blobProblems", file=sys.stderr)
    return EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="slipway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upload", help="upload a file (resumable), optionally wait for it")
    up.add_argument("file")
    up.add_argument("--kind", choices=["slide", "telemetry"], required=True)
    up.add_argument("--content-type", default="application/octet-stream")
    up.add_argument("--resume", metavar="UPLOAD_ID", help="continue this multipart upload")
    up.add_argument("--wait", action="store_true", help="follow processing to the end")
    up.add_argument("--parallel", type=int, default=8, help="parts in flight (default 8)")
    up.add_argument("--timeout", type=float, default=3600, help="--wait gives up after this")
    up.add_argument(
        "--verify-sha256",
        action="store_true",
        help="hash the whole file first and have Slipway check it",
    )
    up.add_argument("--quiet", action="store_true", help="no progress bar")
    up.set_defaults(run=cmd_upload)

    st = sub.add_parser("status", help="show an upload, job or session")
    st.add_argument("id")
    st.set_defaults(run=cmd_status)

    jb = sub.add_parser("jobs", help="list, retry or cancel your jobs")
    jb_sub = jb.add_subparsers(dest="action", required=True)
    jl = jb_sub.add_parser("ls", help="your jobs, newest first")
    jl.add_argument("--status", choices=["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
    jl.add_argument("--type", help="e.g. tile or parse")
    jl.add_argument("--upload", metavar="UPLOAD_ID", help="only this upload's jobs")
    for action, text in (
        ("retry", "re-queue a FAILED or CANCELLED job"),
        ("cancel", "cancel a job (a RUNNING one stops at its next checkpoint)"),
    ):
        jb_sub.add_parser(action, help=text).add_argument("id")
    jb.set_defaults(run=cmd_jobs)

    dq = sub.add_parser("dlq", help="dead-letter queues: counts, redrive")
    dq_sub = dq.add_subparsers(dest="action", required=True)
    rd = dq_sub.add_parser("redrive", help="move dead letters back to their source queues")
    rd.add_argument("--dry-run", action="store_true", help="only list each DLQ and its count")
    rd.add_argument(
        "--method",
        choices=["move-task", "copy"],
        default="move-task",
        help="SQS StartMessageMoveTask (default; copy if unsupported) or receive/send/delete",
    )
    rd.add_argument("--timeout", type=float, default=300, help="give up after this (seconds)")
    dq.set_defaults(run=cmd_dlq)

    ev = sub.add_parser("events", help="print the event log (JSON lines)")
    ev.add_argument("--since", type=int, default=0)
    ev.add_argument("--follow", action="store_true", help="keep waiting for new events")
    ev.set_defaults(run=cmd_events)

    tk = sub.add_parser("token", help="mint a bearer token (needs SLIPWAY_JWT_SECRET)")
    tk.add_argument("--user", required=True)
    tk.add_argument("--scope", action="append", default=[], help="e.g. events:read")
    tk.add_argument(
        "--ttl",
        type=int,
        metavar="SECONDS",
        help="lifetime (default and most: SLIPWAY_TOKEN_MAX_LIFETIME_SECONDS, 24 h)",
    )
    tk.set_defaults(run=cmd_token)

    mg = sub.add_parser("migrate", help="apply database migrations")
    mg.add_argument("--dir", default="infra/migrations")
    mg.set_defaults(run=cmd_migrate)

    rp = sub.add_parser("replay", help="rebuild the projections from the log into a schema")
    rp.add_argument("--schema", default="replay")
    rp.set_defaults(run=cmd_replay)

    vf = sub.add_parser(
        "verify", help="check the hash chain and that the log explains every projection row"
    )
    vf.add_argument(
        "--blobs", action="store_true", help="also re-hash stored blobs against their keys"
    )
    vf.add_argument("--sample", type=int, metavar="N", help="with --blobs: only N of them")
    vf.set_defaults(run=cmd_verify)

    sa = sub.add_parser(
        "stats", help="queues, throughput, failures by code, slowest jobs, uploads (all owners)"
    )
    sa.add_argument("--json", action="store_true", help="the figures as GET /v1/ops/stats has them")
    sa.add_argument(
        "--hours", type=int, default=24, help="window of failures, slowest jobs, uploads (1-168)"
    )
    sa.set_defaults(run=cmd_stats)
    return top


def main(argv: list[str] | None = None) -> int:
    _load_local_env()
    args = parser().parse_args(argv)
    from requests import RequestException

    from slipway.client import ApiError

    try:
        code: int = args.run(args)
    except ApiError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except RequestException as exc:
        print(f"error: cannot reach the API: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
