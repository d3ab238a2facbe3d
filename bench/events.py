"""The event log, on the local stack's Postgres (a scratch database):
- gapless appends/s with 8 writers vs unguarded inserts into a plain BIGSERIAL table with
  the same payloads, one event per transaction (goal ≥ 0.3×);
- replay events/s (goal ≥ 50,000/s);
- long-poll wake-up latency after a commit, p50/p99 (goal p99 ≤ 50 ms).

Usage: python bench/events.py [seconds_per_side]   (the stack must be up: make up)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `bench`, and never shadow the stdlib
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import multiprocessing
import statistics
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.common import result, scratch_database, use_stack
from slipway import events
from slipway.events import NewEvent
from slipway.projections import replay

WRITERS = 8


def job_event() -> NewEvent:
    """A realistic event: a job queued (the projector can replay it)."""
    return NewEvent(
        "v1.job.queued",
        "job",
        uuid.uuid4(),
        {
            "type": "tile",
            "owner": "bench",
            "uploadId": str(uuid.uuid4()),
            "payload": {},
            "maxAttempts": 3,
        },
    )


def _writer(url: str, side: str, seconds: float, out: Any) -> None:
    append = gapless if side == "gapless" else plain
    count = 0
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with conn.transaction():
                append(conn)
            count += 1
    out.put(count)


def run_writers(url: str, seconds: float, side: str) -> int:
    """WRITERS processes (as Lambda instances are) appending for `seconds`."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, side, seconds, out)) for _ in range(WRITERS)]
    for p in procs:
        p.start()
    total = sum(int(out.get(timeout=seconds + 60)) for _ in procs)
    for p in procs:
        p.join()
    return total


def gapless(conn: psycopg.Connection[Any]) -> None:
    events.append(conn, "bench", job_event())


def plain(conn: psycopg.Connection[Any]) -> None:
    new = job_event()
    payload = events.canonical_cbor(new.payload)
    conn.execute(
        "INSERT INTO plain_events (created_at, event_type, subject_kind, subject_id, "
        "actor, payload) VALUES (now(), %s, %s, %s, 'bench', %s)",
        (new.event_type, new.subject_kind, new.subject_id, payload),
    )


def wake_ups(url: str, samples: int = 200) -> list[float]:
    delays = []
    with (
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as writer,
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as waiter,
    ):
        for _ in range(samples):
            head = writer.execute("SELECT last_sequence FROM event_head").fetchone()
            assert head is not None
            woke: list[float] = []

            def wait(since: int = head["last_sequence"], woke: list[float] = woke) -> None:
                events.wait_for(waiter, since, 10, 5.0)
                woke.append(time.perf_counter())

            t = threading.Thread(target=wait)
            t.start()
            time.sleep(0.01)
            with writer.transaction():
                gapless(writer)
            committed = time.perf_counter()
            t.join()
            delays.append((woke[0] - committed) * 1000)
    return delays


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    env = use_stack()
    with scratch_database(env["DATABASE_URL"]) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE plain_events (sequence bigserial PRIMARY KEY, created_at "
                "timestamptz, event_type text, subject_kind text, subject_id uuid, "
                "actor text, payload bytea)"
            )
        reference = run_writers(url, seconds, "plain") / seconds
        ours = run_writers(url, seconds, "gapless") / seconds
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            started = time.perf_counter()
            with conn.transaction():
                _, folded = replay.fold(conn)
            fold_rate = folded / (time.perf_counter() - started)
            rebuilt = replay.rebuild(conn, "replay_bench")
            problems = list(events.verify_chain(conn))
        delays = sorted(wake_ups(url))
    p50 = statistics.median(delays)
    p99 = delays[int(len(delays) * 0.99) - 1]
    print(
        f"plain BIGSERIAL inserts: {reference:,.0f}/s; gapless appends: {ours:,.0f}/s "
        f"({WRITERS} writer processes, one event per transaction, {seconds:.0f} s each)"
    )
    print(
        f"replay: {folded:,} events folded at {fold_rate:,.0f}/s; full rebuild with COPY "
        f"{rebuilt.events / rebuilt.seconds:,.0f}/s; chain problems: {len(problems)}"
    )
    print(
        f"long-poll wake-up after commit: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {delays[-1]:.1f} ms ({len(delays)} samples)"
    )
    result(
        "events",
        ours / reference,
        gapless_per_s=ours,
        plain_per_s=reference,
        replay_per_s=fold_rate,
        rebuild_per_s=rebuilt.events / rebuilt.seconds,
        wake_p50_ms=p50,
        wake_p99_ms=p99,
    )


if __name__ == "__main__":
    main()
