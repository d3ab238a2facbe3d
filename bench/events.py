"""The event log, on the local stack's Postgres (a scratch database):
- gapless appends/s with 8 writers (each commits its event to the inbox, then takes its
  turn at sequencing, as `db.committing` does) vs unguarded inserts into a plain BIGSERIAL
  table with the same payloads, one event per transaction (goal ≥ 0.8×);
- commit-to-visible under that load: from the start of a writer's transaction until a
  reader tailing the log with long polls has the event (p99 goal ≤ 50 ms);
- replay events/s (goal ≥ 100,000/s);
- long-poll wake-up latency after a commit and the writer's turn, one writer, p50/p99;
- WAL flushes per event on each side (`pg_stat_wal.wal_sync`): what a network database's
  millisecond fsyncs multiply, and CPU per event by process (writers, Postgres): on this
  machine's two cores the writers and their backends are CPU-bound;
- the sequencer catching up on a backlog (20,000 events waiting in the inbox, as after a
  sequencer outage) against copying the same rows into the plain table in one statement.

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
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.common import cpu_per_item, process_cpu, result, scratch_database, use_stack
from slipway import db, events
from slipway.events import NewEvent
from slipway.projections import replay

WRITERS = 8


def job_event() -> NewEvent:
    """A realistic event: a job queued (the projector can replay it), stamped with the
    wall-clock time its transaction starts, for the tailing reader."""
    return NewEvent(
        "v1.job.queued",
        "job",
        uuid.uuid4(),
        {
            "type": "tile",
            "owner": "bench",
            "uploadId": str(uuid.uuid4()),
            "payload": {"writtenAt": time.time()},
            "maxAttempts": 3,
        },
    )


def _writer(url: str, side: str, seconds: float, out: Any) -> None:
    append = gapless if side == "gapless" else plain
    count = 0
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            append(conn)
            count += 1
    out.put(count)


def _tail(url: str, seconds: float, out: Any) -> None:
    """A reader tailing the log with long polls, as `GET /v1/events?wait=` does: how long
    after its writer's transaction began each event became visible to it (seconds)."""
    delays = []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        since = 0  # a fresh database: the gapless side's events are the first
        deadline = time.monotonic() + seconds + 5
        while time.monotonic() < deadline:
            for event in events.wait_for(conn, since, 1000, 1.0):
                delays.append(time.time() - event.payload["payload"]["writtenAt"])
                since = event.sequence
    out.put(delays)


def wal_syncs(url: str) -> int:
    """The cluster's WAL flushes so far (the bench runs alone on the stack's Postgres)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Side:
    written: int
    visible: list[float]  # each event's delay from its writer's transaction to the reader
    wal_syncs: int
    cpu_ms: dict[str, float]  # per event, by process group (bench.common.cpu_per_item)


def run_writers(url: str, seconds: float, side: str) -> Side:
    """WRITERS processes (as Lambda instances are) appending for `seconds`, and (on the
    gapless side) a tailing reader."""
    syncs, cpu = wal_syncs(url), process_cpu()
    ctx = multiprocessing.get_context("spawn")
    out, tail_out = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, side, seconds, out)) for _ in range(WRITERS)]
    tail = ctx.Process(target=_tail, args=(url, seconds, tail_out))
    if side == "gapless":
        tail.start()
    for p in procs:
        p.start()
    total = sum(int(out.get(timeout=seconds + 60)) for _ in procs)
    for p in procs:
        p.join()
    delays = tail_out.get(timeout=seconds + 60) if side == "gapless" else []
    if side == "gapless":
        tail.join()
    spent = cpu_per_item(cpu, process_cpu(), total)
    return Side(total, delays, wal_syncs(url) - syncs, spent)


def gapless(conn: psycopg.Connection[Any]) -> None:
    """One event through the inbox, and the writer's turn at sequencing after its commit."""
    with db.committing(conn):
        events.append(conn, "bench", job_event())


def plain(conn: psycopg.Connection[Any]) -> None:
    new = job_event()
    payload = events.canonical_cbor(new.payload)
    with conn.transaction():
        conn.execute(
            "INSERT INTO plain_events (created_at, event_type, subject_kind, subject_id, "
            "actor, payload) VALUES (now(), %s, %s, %s, 'bench', %s)",
            (new.event_type, new.subject_kind, new.subject_id, payload),
        )


CATCH_UP = 20_000
COPY_INBOX = """INSERT INTO plain_events (created_at, event_type, subject_kind, subject_id,
    actor, payload) SELECT created_at, event_type, subject_kind, subject_id, actor, payload
    FROM event_inbox ORDER BY id"""


def catch_up(url: str) -> tuple[float, float]:
    """Events/s moved by the sequencer out of a backlog, and rows/s copied by the plain
    statement. The backlog forms while another session holds the sequencer's turn."""
    with (
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn,
        psycopg.connect(url, autocommit=True) as holder,
    ):
        holder.execute(events.SQL["lead"])
        for _ in range(CATCH_UP // 1000):
            with db.committing(conn):  # its turn after the commit finds the turn taken
                events.append(conn, "bench", *[job_event() for _ in range(1000)])
        holder.execute(events.SQL["end_turn"])
        started = time.perf_counter()
        conn.execute(COPY_INBOX)
        copied = CATCH_UP / (time.perf_counter() - started)
        started = time.perf_counter()
        moved = events.sequence(conn)
        assert moved == CATCH_UP, moved
        return moved / (time.perf_counter() - started), copied


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
        plain_side = run_writers(url, seconds, "plain")
        reference = plain_side.written / seconds
        gapless_side = run_writers(url, seconds, "gapless")
        written, visible = gapless_side.written, gapless_side.visible
        assert len(visible) == written, f"the reader saw {len(visible)} of {written} events"
        ours = written / seconds
        visible_ms = sorted(v * 1000 for v in visible)
        visible_p99 = visible_ms[int(len(visible_ms) * 0.99) - 1]
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            started = time.perf_counter()
            with conn.transaction():
                _, folded = replay.fold(conn)
            fold_rate = folded / (time.perf_counter() - started)
            rebuilt = replay.rebuild(conn, "replay_bench")
            problems = list(events.verify_chain(conn))
        delays = sorted(wake_ups(url))
        caught_up, copied = catch_up(url)
    p50 = statistics.median(delays)
    p99 = delays[int(len(delays) * 0.99) - 1]
    print(
        f"plain BIGSERIAL inserts: {reference:,.0f}/s; gapless appends: {ours:,.0f}/s "
        f"({WRITERS} writer processes, one event per transaction, {seconds:.0f} s each)"
    )
    print(
        f"WAL flushes per event: gapless {gapless_side.wal_syncs / written:.2f}, "
        f"plain {plain_side.wal_syncs / plain_side.written:.2f}"
    )
    for name, measured in (("gapless", gapless_side), ("plain", plain_side)):
        spent = ", ".join(f"{k} {v:.2f} ms" for k, v in measured.cpu_ms.items())
        print(f"CPU per event, {name}: {spent}")
    print(
        f"commit-to-visible under that load: p50 {statistics.median(visible_ms):.1f} ms, "
        f"p99 {visible_p99:.1f} ms, max {visible_ms[-1]:.1f} ms"
    )
    print(
        f"replay: {folded:,} events folded at {fold_rate:,.0f}/s; full rebuild with COPY "
        f"{rebuilt.events / rebuilt.seconds:,.0f}/s; chain problems: {len(problems)}"
    )
    print(
        f"long-poll wake-up after commit: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {delays[-1]:.1f} ms ({len(delays)} samples)"
    )
    print(
        f"catching up on {CATCH_UP:,} events in the inbox: {caught_up:,.0f}/s; the same "
        f"rows copied into the plain table: {copied:,.0f}/s"
    )
    result(
        "events",
        ours / reference,
        gapless_per_s=ours,
        plain_per_s=reference,
        visible_p99_ms=visible_p99,
        replay_per_s=fold_rate,
        rebuild_per_s=rebuilt.events / rebuilt.seconds,
        wake_p50_ms=p50,
        wake_p99_ms=p99,
        wal_syncs_per_event=gapless_side.wal_syncs / written,
        plain_wal_syncs_per_event=plain_side.wal_syncs / plain_side.written,
        cpu_ms_per_event=gapless_side.cpu_ms["total"],
        plain_cpu_ms_per_event=plain_side.cpu_ms["total"],
        catch_up_per_s=caught_up,
        catch_up_vs_copy=caught_up / copied,
    )


if __name__ == "__main__":
    main()
