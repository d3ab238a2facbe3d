"""The line-scan projectors: a scan keeps the owner whose first PUT created it."""

from __future__ import annotations

from uuid import uuid4

from slipway.events import NewEvent
from slipway.projections import MemoryStore, apply
from tests.unit.test_projectors import event


def test_a_second_scan_created_never_changes_the_owner() -> None:
    """Logs written before writers claimed scans under a lock may hold two."""
    store, scan = MemoryStore(), uuid4()
    first = event(NewEvent("v1.linescan.scan_created", "line_scan", scan, {"owner": "alice"}))
    apply(store, first)
    apply(store, event(NewEvent("v1.linescan.scan_created", "line_scan", scan, {"owner": "bob"})))
    assert store.get("line_scans", scan) == {
        "id": scan,
        "owner": "alice",
        "created_at": first.created_at,
    }
