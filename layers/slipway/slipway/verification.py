"""`slipway verify` and the scheduled invariant check: is every row explained by the log,
is the log itself intact, and (with `--blobs`, or a sample every hour) do the stored blobs
hold the bytes their keys name?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slipway import blobs, db, events
from slipway.projections import replay


@dataclass
class Report:
    chain: list[events.ChainProblem] = field(default_factory=list)
    differences: list[replay.Difference] = field(default_factory=list)
    stats: replay.ReplayStats | None = None
    blob_audit: blobs.AuditReport | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.chain
            and not self.differences
            and not (self.blob_audit and self.blob_audit.problems)
        )

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.stats.events if self.stats else 0,
            "replaySeconds": round(self.stats.seconds, 3) if self.stats else None,
            "chainProblems": [f"#{p.sequence}: {p.problem}" for p in self.chain[:20]],
            "differences": [
                f"{d.table} {d.kind}: " + ", ".join(f"{k}={v}" for k, v in list(d.row.items())[:4])
                for d in self.differences[:20]
            ],
            **(
                {
                    "blobsChecked": self.blob_audit.checked,
                    "blobBytesChecked": self.blob_audit.bytes,
                    "blobProblems": [
                        f"{p.key}: {p.problem}" for p in self.blob_audit.problems[:20]
                    ],
                }
                if self.blob_audit
                else {}
            ),
        }


def run(limit: int = 100, *, blobs_checked: int | None = 0) -> Report:
    """`blobs_checked`: 0 checks no blob, N a sample of N, None every blob."""
    report = Report()
    if blobs_checked != 0:
        report.blob_audit = blobs.audit(blobs_checked)
    with db.connect() as conn:
        for problem in events.verify_chain(conn):
            report.chain.append(problem)
            if len(report.chain) >= limit:
                break
        report.stats, report.differences = replay.differences(conn, limit)
    return report
