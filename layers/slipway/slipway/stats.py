"""The operator's figures, from the database, across all owners: queue depth and wait per
job type, throughput, recent failures by code, the slowest runs, uploads by state.

One snapshot serves `slipway stats` and `GET /v1/ops/stats` (the operator page), in the
API's camelCase shape. Every query reads an index range (sql/stats.sql), so a snapshot
costs the same whatever the size of the history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slipway import db, queries
from slipway.events import rfc3339
from slipway.jobs import Job

SQL = queries.load("stats")
THROUGHPUT_MINUTES = 60
DEFAULT_HOURS = 24
MAX_HOURS = 24 * 7
FAILURE_CODES = 20  # at most this many codes
FAILURE_SAMPLE = 5  # job ids per code, newest first
SLOWEST = 10


def _ts(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def _age(now: datetime, since: datetime | None) -> float | None:
    return round(max((now - since).total_seconds(), 0.0), 3) if since else None


def snapshot(conn: db.Connection, hours: int = DEFAULT_HOURS) -> dict[str, Any]:
    """The figures now; failures, slowest runs and uploads cover the last `hours`."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours must be between 1 and {MAX_HOURS}")
    with conn.transaction():  # one snapshot: every figure as of the same moment
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        now = conn.execute("SELECT now() AS now").fetchone()["now"]  # type: ignore[index]
        queues = conn.execute(SQL["queues"]).fetchall()
        finished = conn.execute(SQL["throughput"], {"minutes": THROUGHPUT_MINUTES}).fetchall()
        window = {"hours": hours}
        failures = conn.execute(
            SQL["failures"], window | {"sample": FAILURE_SAMPLE, "codes": FAILURE_CODES}
        ).fetchall()
        slowest = conn.execute(SQL["slowest"], window | {"limit": SLOWEST}).fetchall()
        uploads = conn.execute(SQL["uploads"], window).fetchall()
    return {
        "generatedAt": rfc3339(now),
        "windowHours": hours,
        "queues": [
            {
                "type": q["type"],
                "queued": q["queued"],
                "due": q["due"],
                "retrying": q["retrying"],
                "running": q["running"],
                "oldestDueSince": _ts(q["oldest_due_since"]),
                "oldestDueAgeSeconds": _age(now, q["oldest_due_since"]),
            }
            for q in queues
        ],
        "throughput": _throughput(finished),
        "failures": [
            {
                "code": f["code"],
                "count": f["count"],
                "lastAt": _ts(f["last_at"]),
                "lastMessage": f["last_message"] or "",
                "types": list(f["types"]),
                "jobIds": [str(i) for i in f["job_ids"]],
            }
            for f in failures
        ],
        "slowest": [
            {
                "jobId": str(s["id"]),
                "type": s["type"],
                "owner": s["owner"],
                "status": s["status"],
                "uploadId": str(s["upload_id"]) if s["upload_id"] else None,
                "startedAt": _ts(s["started_at"]),
                "finishedAt": _ts(s["finished_at"]),
                "seconds": round(s["seconds"], 3),
            }
            for s in slowest
        ],
        "uploads": {u["state"]: u["count"] for u in uploads},
    }


def job_detail(job: Job) -> dict[str, Any]:
    """A job as the operator sees it: the owner's view (with the correlation and trace
    ids its payload carries, when the request that caused it had them), plus whose it is."""
    return job.to_api() | {"owner": job.owner}


def _throughput(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_type.setdefault(
            row["type"], {"type": row["type"], "finished": 0, "byStatus": {}}
        )
        entry["finished"] += row["finished"]
        entry["byStatus"][row["status"]] = row["finished"]
    for entry in by_type.values():
        entry["perMinute"] = round(entry["finished"] / THROUGHPUT_MINUTES, 3)
    return {"minutes": THROUGHPUT_MINUTES, "types": list(by_type.values())}


def _table(title: str, header: list[str], rows: list[list[str]], empty: str) -> list[str]:
    if not rows:
        return [title, f"  ({empty})", ""]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title]
    for row in [header, *rows]:
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    return [*lines, ""]


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def as_text(figures: dict[str, Any]) -> str:
    """The snapshot as `slipway stats` prints it: one table per figure."""
    hours = figures["windowHours"]
    minutes = figures["throughput"]["minutes"]
    lines = [f"as of {figures['generatedAt']}", ""]
    lines += _table(
        "QUEUES",
        ["TYPE", "QUEUED", "DUE", "RETRYING", "RUNNING", "OLDEST DUE WAITS"],
        [
            [
                q["type"],
                str(q["queued"]),
                str(q["due"]),
                str(q["retrying"]),
                str(q["running"]),
                _seconds(q["oldestDueAgeSeconds"]),
            ]
            for q in figures["queues"]
        ],
        "no queued or running job",
    )
    lines += _table(
        f"THROUGHPUT (last {minutes} min)",
        ["TYPE", "FINISHED", "PER MIN", "BY STATUS"],
        [
            [
                t["type"],
                str(t["finished"]),
                f"{t['perMinute']:.2f}",
                ", ".join(f"{s} {n}" for s, n in t["byStatus"].items()),
            ]
            for t in figures["throughput"]["types"]
        ],
        "no job ended",
    )
    lines += _table(
        f"FAILURES BY CODE (last {hours} h)",
        ["CODE", "COUNT", "TYPES", "LAST", "LAST MESSAGE", "LATEST JOBS"],
        [
            [
                f["code"],
                str(f["count"]),
                ",".join(f["types"]),
                f["lastAt"] or "",
                f["lastMessage"][:80],
                " ".join(f["jobIds"]),
            ]
            for f in figures["failures"]
        ],
        "no failed job",
    )
    lines += _table(
        f"SLOWEST JOBS (last {hours} h)",
        ["JOB", "TYPE", "OWNER", "STATUS", "RUN", "FINISHED"],
        [
            [
                s["jobId"],
                s["type"],
                s["owner"],
                s["status"],
                _seconds(s["seconds"]),
                s["finishedAt"] or "",
            ]
            for s in figures["slowest"]
        ],
        "no job ended",
    )
    lines += _table(
        f"UPLOADS (created in the last {hours} h)",
        ["STATE", "COUNT"],
        [[state, str(count)] for state, count in figures["uploads"].items()],
        "no upload",
    )
    return "\n".join(lines).rstrip()
