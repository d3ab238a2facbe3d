"""`slipway verify` and the scheduled invariant check: is every row explained by the log,
and is the log itself intact?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slipway import db, events
from slipway.projections import replay


@dataclass
class Report:
    chain: list[events.ChainProblem] = field(default_factory=list)
    differences: list[replay.Difference] = field(default_factory=list)
    stats: replay.ReplayStats | None = None

    @property
    def ok(self) -> bool:
        return not self.chain and not self.differences

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.stats.events if self.stats else 0,
            "replaySeconds": round(self.stats.seconds, 3) if self.stats else None,
            "chainProblems": [f"#{p.sequence}: {p.problem}" for p in self.chain[:20]],
            "differences": [
                f"{d.table} {d.kind}: " + ", ".join(f"{k}={v}" for k, v in list(d.row.items())[:4])
                for d in self.differences[:20]
            ],
        }


def run(limit: int = 100) -> Report:
    report = Report()
    with db.connect() as conn:
        for problem in events.verify_chain(conn):
            report.chain.append(problem)
            if len(report.chain) >= limit:
                break
        report.stats, report.differences = replay.differences(conn, limit)
    return report
