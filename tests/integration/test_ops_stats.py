"""The operator's figures (slipway.stats) on a database of their own: exactly what the jobs
and uploads made through the library say, `slipway stats` printing the same, and every
query reading an index range, not the table, on a history of 200 000 jobs."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from slipway import db, jobs, stats, uploads
from slipway.errors import Code, SlipwayError
from slipway.projections import record
from tests.support import run_cli

WORKER = "ops-test-worker"


def queue(job_type: str, owner: str = "ops-owner") -> uuid.UUID:
    with db.transaction() as conn:
        event = jobs.queued(job_type, owner, None, {"correlationId": f"req-{job_type}"})
        record(conn, "test", event)
    assert event.subject_id is not None
    return event.subject_id


def run(job_type: str) -> jobs.Job:
    claimed = jobs.claim(job_type, WORKER)
    assert claimed is not None
    return claimed


def fail(job_type: str, code: Code, message: str, *, permanent: bool = True) -> uuid.UUID:
    job = run(job_type)
    assert jobs.fail(job, WORKER, SlipwayError(code, message, permanent=permanent))
    return job.id


def snapshot(hours: int = 24) -> dict[str, Any]:
    with db.connect() as conn:
        return stats.snapshot(conn, hours)


def test_the_figures_are_what_the_jobs_and_uploads_say(on_scratch_db: str) -> None:
    began = time.monotonic()
    # a queue of three: one due from the start, one running, one waiting for its retry
    first = queue("ops-a")
    time.sleep(0.3)
    queue("ops-a")  # claimed below (the oldest goes first: the claim takes `first`)
    queue("ops-a")
    running = run("ops-a")
    assert running.id == first
    retried = fail("ops-a", Code.TRANSIENT, "blip", permanent=False)  # backoff >= 2.5 s
    assert jobs.get(retried).status == "QUEUED"
    # an end of each kind on another type; the slow one runs about 1.2 s
    queue("ops-b")
    slow = run("ops-b")
    time.sleep(1.2)
    assert jobs.succeed(slow, WORKER)
    failed = []
    for message in ("the first", "the latest"):
        queue("ops-b")
        failed.append(fail("ops-b", Code.IMAGE_UNREADABLE, message))
        time.sleep(0.05)
    queue("ops-b", owner="ops-other")
    other = fail("ops-b", Code.CSV_NO_TIME_COLUMN, "no time")
    cancelled = queue("ops-b")
    jobs.cancel(cancelled, "ops-owner")
    uploads.create("ops-owner", uploads.NewUpload("slide", "s.jpg", 1234, "image/jpeg"))

    figures = snapshot()
    waited = time.monotonic() - began

    [queue_a] = figures["queues"]  # ops-b has nothing queued or running
    age = queue_a.pop("oldestDueAgeSeconds")
    assert queue_a.pop("oldestDueSince")
    assert queue_a == {"type": "ops-a", "queued": 2, "due": 1, "retrying": 1, "running": 1}
    assert 1.2 <= age <= waited - 0.3, "the due job waits since it was queued, not the first"

    assert figures["throughput"] == {
        "minutes": 60,
        "types": [
            {
                "type": "ops-b",
                "finished": 5,
                "byStatus": {"CANCELLED": 1, "FAILED": 3, "SUCCEEDED": 1},
                "perMinute": round(5 / 60, 3),
            }
        ],
    }
    unreadable, no_time = figures["failures"]
    assert unreadable.pop("lastAt") and no_time.pop("lastAt")
    assert unreadable == {
        "code": "IMAGE_UNREADABLE",
        "count": 2,
        "lastMessage": "the latest",
        "types": ["ops-b"],
        "jobIds": [str(failed[1]), str(failed[0])],
    }
    assert no_time == {
        "code": "CSV_NO_TIME_COLUMN",
        "count": 1,
        "lastMessage": "no time",
        "types": ["ops-b"],
        "jobIds": [str(other)],
    }
    slowest = figures["slowest"]
    assert slowest[0]["jobId"] == str(slow.id) and slowest[0]["status"] == "SUCCEEDED"
    assert 1.2 <= slowest[0]["seconds"] < waited
    assert [s["seconds"] for s in slowest] == sorted((s["seconds"] for s in slowest), reverse=True)
    assert {s["jobId"] for s in slowest} == {str(slow.id), *map(str, failed), str(other)}, (
        "every job that ran and ended; the cancelled one never ran"
    )
    assert {s["owner"] for s in slowest} == {"ops-owner", "ops-other"}
    assert figures["uploads"] == {"pending": 1}

    detail = stats.job_detail(jobs.get(other))
    assert detail["owner"] == "ops-other" and detail["correlationId"] == "req-ops-b"
    assert detail["error"] == {"code": "CSV_NO_TIME_COLUMN", "message": "no time"}
    assert detail["traceId"] is None


def test_slipway_stats_prints_the_same_figures(on_scratch_db: str) -> None:
    queue("ops-cli")
    queue("ops-cli")
    failed = fail("ops-cli", Code.IMAGE_UNSUPPORTED, "a GIF")
    env = os.environ | {"DATABASE_URL": on_scratch_db, "SLIPWAY_ENV_FILE": "/nonexistent"}

    done = run_cli("stats", "--json", env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    expected = snapshot()
    for figures in (printed, expected):
        figures.pop("generatedAt")
        for q in figures["queues"]:
            q.pop("oldestDueAgeSeconds")
    assert printed == expected
    assert printed["failures"][0]["jobIds"] == [str(failed)]

    done = run_cli("stats", "--hours", "1", env=env)
    assert done.returncode == 0, done.stderr
    tables: dict[str, list[list[str]]] = {}
    for line in done.stdout.splitlines()[1:]:
        if line and not line.startswith(" "):
            rows = tables.setdefault(line, [])
        elif line.strip():
            rows.append(line.split())
    assert list(tables) == [
        "QUEUES",
        "THROUGHPUT (last 60 min)",
        "FAILURES BY CODE (last 1 h)",
        "SLOWEST JOBS (last 1 h)",
        "UPLOADS (created in the last 1 h)",
    ], done.stdout
    assert tables["QUEUES"][1][:5] == ["ops-cli", "1", "1", "0", "0"]
    assert tables["THROUGHPUT (last 60 min)"][1] == ["ops-cli", "1", "0.02", "FAILED", "1"]
    [header, failure] = tables["FAILURES BY CODE (last 1 h)"]
    assert header[:3] == ["CODE", "COUNT", "TYPES"]
    assert failure[:3] == ["IMAGE_UNSUPPORTED", "1", "ops-cli"] and failure[-1] == str(failed)
    assert tables["SLOWEST JOBS (last 1 h)"][1][:4] == [
        str(failed),
        "ops-cli",
        "ops-owner",
        "FAILED",
    ]
    assert tables["UPLOADS (created in the last 1 h)"] == [["(no", "upload)"]]

    refused = run_cli("stats", "--hours", "0", env=env)
    assert refused.returncode == 2 and "between 1 and 168" in refused.stderr


HISTORY = """
INSERT INTO jobs (id, type, owner, status, payload, attempt_count, max_attempts,
                  last_error_code, last_error_message, created_at, updated_at, started_at,
                  finished_at)
SELECT gen_random_uuid(), CASE WHEN i % 3 = 0 THEN 'parse' ELSE 'tile' END, 'o' || (i % 50),
       CASE WHEN i % 20 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, '{}', 1, 3,
       CASE WHEN i % 20 = 0 THEN 'IMAGE_UNREADABLE' END, CASE WHEN i % 20 = 0 THEN 'x' END,
       t, t, t, t + make_interval(secs => i % 29)
FROM (SELECT i, now() - make_interval(mins => i) AS t
      FROM generate_series(1, 200000) AS i) AS history;
INSERT INTO uploads (id, owner, kind, filename, content_type, size, method, object_key,
                     checksum_parts, expires_at, state, deduplicated, created_at, updated_at)
SELECT gen_random_uuid(), 'o', 'slide', 'f', 'image/jpeg', 1, 'PUT', 'k', false, t,
       'ready', false, t, t
FROM (SELECT now() - make_interval(mins => i) AS t FROM generate_series(1, 200000) AS i) AS u;
ANALYZE jobs;
ANALYZE uploads;
"""


COUNTS = """
SELECT count(*) FILTER (WHERE finished_at >= %(at)s - interval '60 minutes') AS hour,
       count(*) FILTER (WHERE finished_at >= %(at)s - interval '24 hours') AS day,
       count(*) FILTER (WHERE finished_at >= %(at)s - interval '24 hours'
                        AND status = 'FAILED') AS failed,
       (SELECT count(*) FROM uploads WHERE created_at >= %(at)s - interval '24 hours') AS uploads
FROM jobs
"""


def test_every_figure_reads_an_index_range_not_the_table(on_scratch_db: str) -> None:
    """200 000 jobs and uploads over 139 days, one a minute: the window's rows come from
    the indexes of migration 0007 (and jobs_claimable), never a scan of the whole table,
    and they are the rows a plain count over the table finds at the snapshot's time."""
    with psycopg.connect(on_scratch_db, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(HISTORY.encode())  # trusted test SQL, no parameters
        params = {"minutes": 60, "hours": 24, "sample": 5, "codes": 20, "limit": 10}
        for name, sql in stats.SQL.items():
            plan = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
            assert plan is not None
            text = json.dumps(plan)
            assert '"Seq Scan"' not in text, f"{name} scans a whole table: {text[:1500]}"
        took = time.perf_counter()
        figures = stats.snapshot(conn, 24)
        took = time.perf_counter() - took
        at = {"at": datetime.fromisoformat(figures["generatedAt"])}
        counted = conn.execute(COUNTS, at).fetchone()
    assert counted is not None
    # the windows moved on since the insert (a few minutes at most on a loaded machine)
    assert 55 <= counted["hour"] <= 60 and 1435 <= counted["day"] <= 1440, counted
    assert sum(t["finished"] for t in figures["throughput"]["types"]) == counted["hour"]
    assert figures["uploads"] == {"ready": counted["uploads"]}
    [unreadable] = figures["failures"]
    assert unreadable["count"] == counted["failed"]
    print(f"snapshot over 200 000 jobs and uploads: {took * 1000:.1f} ms")
