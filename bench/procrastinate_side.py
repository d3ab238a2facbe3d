"""The procrastinate side of bench/queue.py, run with its own virtualenv's Python:
NOOP jobs deferred, then one worker (concurrency 4) fetches and finishes them all."""

from __future__ import annotations

import sys
import time

import procrastinate


def main(url: str, count: int) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(queue="bench")  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    with app.open():
        app.schema_manager.apply_schema()
        noop.batch_defer(*({} for _ in range(count)))
        started = time.perf_counter()
        app.run_worker(queues=["bench"], concurrency=4, wait=False, install_signal_handlers=False)
        elapsed = time.perf_counter() - started
    print(f"{count} {elapsed}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
