"""The job queue: claim + finish jobs/s with 4 worker processes (slipway.jobs) vs pgbench
with 4 clients on the same database running only the claim and the finish, no event log
(the RESULT ratio, printed last), and, for reference, pgbench running the same SQL.

Slipway does, per job: a claim transaction (SELECT … FOR UPDATE SKIP LOCKED, UPDATE the
job's changed columns, `v1.job.claimed` into the log's inbox) and a finish transaction
(lock the job, UPDATE it, `v1.job.succeeded` into the inbox), each followed by its turn
at sequencing the inbox into the log (docs/event-log.md#group-commit). The same-SQL
pgbench script does the two transactions without the sequencing (pgbench cannot compute
BLAKE3), so its events stay in the inbox. The bare script does the two UPDATEs a queue
with no history needs: what the event log costs is the gap.

Usage: python bench/queue.py [jobs]   (the stack must be up: make up)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import multiprocessing
import os
import re
import subprocess
import tempfile
import time
from typing import Any

from bench.common import DATA, result, scratch_database, use_stack
from slipway import db, jobs
from slipway.projections import record

WORKERS = 4
TYPE = "bench"
PGBENCH_SCRIPT = """
BEGIN;
SELECT id AS job_id FROM jobs WHERE type = 'bench'
  AND ((status = 'QUEUED' AND (next_retry_at IS NULL OR next_retry_at <= now()))
       OR (status = 'RUNNING' AND lease_expires_at < now()))
  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED \\gset
SELECT clock_timestamp() AS ts \\gset
UPDATE jobs SET status = 'RUNNING', attempt_count = attempt_count + 1, locked_at = :ts,
  locked_by = 'pgbench', lease_expires_at = :ts::timestamptz + interval '120 seconds',
  started_at = coalesce(started_at, :ts), updated_at = :ts
  WHERE id = :job_id;
INSERT INTO event_inbox (created_at, event_type, subject_kind, subject_id, actor, payload,
  payload_digest) VALUES (:ts, 'v1.job.claimed', 'job', :job_id, 'pgbench', '\\xa0',
  decode(repeat('00', 32), 'hex'));
SELECT * FROM jobs WHERE id = :job_id;
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = :job_id FOR UPDATE;
SELECT clock_timestamp() AS ts \\gset
UPDATE jobs SET status = 'SUCCEEDED', locked_at = NULL, locked_by = NULL,
  lease_expires_at = NULL, finished_at = :ts, updated_at = :ts
  WHERE id = :job_id;
INSERT INTO event_inbox (created_at, event_type, subject_kind, subject_id, actor, payload,
  payload_digest) VALUES (:ts, 'v1.job.succeeded', 'job', :job_id, 'pgbench', '\\xa0',
  decode(repeat('00', 32), 'hex'));
COMMIT;
"""

# The claim and the finish alone: what a job queue with no event log does per job.
PGBENCH_BARE_SCRIPT = """
BEGIN;
SELECT id AS job_id FROM jobs WHERE type = 'bench'
  AND ((status = 'QUEUED' AND (next_retry_at IS NULL OR next_retry_at <= now()))
       OR (status = 'RUNNING' AND lease_expires_at < now()))
  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED \\gset
UPDATE jobs SET status = 'RUNNING', attempt_count = attempt_count + 1, locked_at = now(),
  locked_by = 'pgbench', lease_expires_at = now() + interval '120 seconds',
  started_at = coalesce(started_at, now()), updated_at = now()
  WHERE id = :job_id;
COMMIT;
UPDATE jobs SET status = 'SUCCEEDED', locked_at = NULL, locked_by = NULL,
  lease_expires_at = NULL, finished_at = now(), updated_at = now()
  WHERE id = :job_id AND locked_by = 'pgbench';
"""


def enqueue(url: str, count: int) -> None:
    os.environ["DATABASE_URL"] = url
    db.close_pool()
    from slipway import config

    config.settings.cache_clear()
    with db.transaction() as conn:
        for _ in range(count):
            record(conn, "bench", jobs.queued(TYPE, "bench", None, {}))
    db.close_pool()


def _worker(url: str, start: Any, out: Any) -> None:
    os.environ.update(DATABASE_URL=url, SLIPWAY_DB_POOL_MAX="2")
    jobs.get  # imports done before the clock starts  # noqa: B018
    start.wait()
    began, done = time.time(), 0
    name = f"w{os.getpid()}"
    while (job := jobs.claim(TYPE, name)) is not None:
        jobs.succeed(job, name)
        done += 1
    out.put((began, time.time(), done))


def slipway_side(url: str) -> tuple[float, int]:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, start, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    time.sleep(3)  # let every worker import and connect
    start.set()
    reports = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(r[1] for r in reports) - min(r[0] for r in reports)
    return elapsed, sum(r[2] for r in reports)


def pgbench_side(url: str, count: int, script_text: str = PGBENCH_SCRIPT) -> float:
    binary = next(
        (
            p
            for p in ("/usr/lib/postgresql/15/bin/pgbench", "pgbench")
            if os.path.exists(p) or p == "pgbench"
        ),
        "pgbench",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(script_text)
    out = subprocess.run(
        [
            binary,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(WORKERS),
            "-j",
            str(WORKERS),
            "-t",
            str(count // WORKERS),
            "-f",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"pgbench failed:\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")
    os.unlink(script.name)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    assert match, out.stdout + out.stderr
    return float(match.group(1))


def procrastinate_side(admin_url: str, count: int) -> float | None:
    """procrastinate (a Postgres job queue for Python) on the same server, if it installs
    (into its own virtualenv under .slipway/bench, once)."""
    venv = DATA / "procrastinate-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
        got = (
            made.returncode == 0
            and subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "procrastinate==3.10.0"],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        if not got:
            print("procrastinate: could not be installed here; no third comparison")
            return None
    with scratch_database(admin_url) as url:
        side = Path(__file__).with_name("procrastinate_side.py")
        out = subprocess.run(
            [str(python), "-I", str(side), url, str(count)],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        print(f"procrastinate: failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    done, seconds = out.stdout.split()
    rate = int(done) / float(seconds)
    print(f"procrastinate 3.10 (one worker, concurrency 4): {rate:,.0f} jobs/s")
    return rate


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    env = use_stack()
    with scratch_database(env["DATABASE_URL"]) as url:
        enqueue(url, count)
        elapsed, done = slipway_side(url)
        ours = done / elapsed
    with scratch_database(env["DATABASE_URL"]) as url:
        enqueue(url, count)
        same_sql = pgbench_side(url, count)
    with scratch_database(env["DATABASE_URL"]) as url:
        enqueue(url, count)
        bare = pgbench_side(url, count, PGBENCH_BARE_SCRIPT)
    print(f"pgbench, the same SQL ({WORKERS} clients): {same_sql:,.0f} jobs/s")
    print(f"pgbench, claim + finish only, no event log ({WORKERS} clients): {bare:,.0f} jobs/s")
    print(
        f"slipway.jobs claim + succeed ({WORKERS} worker processes): {ours:,.0f} jobs/s "
        f"({done} jobs in {elapsed:.1f} s)"
    )
    third = procrastinate_side(env["DATABASE_URL"], count)
    extra = {"procrastinate_jobs_per_s": third, "vs_procrastinate": ours / third} if third else {}
    result(
        "queue",
        ours / bare,
        slipway_jobs_per_s=ours,
        pgbench_bare_jobs_per_s=bare,
        vs_same_sql=ours / same_sql,
        pgbench_same_sql_jobs_per_s=same_sql,
        workers=WORKERS,
        jobs=done,
        **extra,
    )


if __name__ == "__main__":
    main()
