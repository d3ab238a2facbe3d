"""Fan-out: one slide's tiling as many jobs (docs/tiling.md#fan-out, docs/jobs.md#fan-out).

A `tile` job over SLIPWAY_TILE_FANOUT_PIXELS plans its level 0 as regions: rectangles
whose origins are multiples of B = 2**depth tile sizes, so a region's own dzsave yields,
for its `depth + 1` largest levels, exactly the slide's tiles (offset by x / (2**j T),
y / (2**j T)). Each region is a `tile_region` job; the `tile` job waits (status WAITING,
which no claim takes); the last region's success queues `tile_finish` in its own
transaction, which stitches the regions' smallest kept level, builds the levels above it
and the descriptor, and ends the `tile` job SUCCEEDED. A region failing for good fails
the `tile` job with its code; cancelling the `tile` job cancels the regions.

No pyvips here (the API imports this for the cancel cascade): the pixels are in
`slipway.regions`.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from slipway import db, queries
from slipway.errors import Code, SlipwayError
from slipway.events import NewEvent

log = logging.getLogger(__name__)
SQL = queries.load("fanout")
PARENT, REGION, FINISH = "tile", "tile_region", "tile_finish"
WAITING = "WAITING"
# The block is at most a quarter of a region's side: regions rounded to whole blocks then
# differ in area by a few per cent, not by the 2–4× of one block more or less.
BLOCKS_PER_SIDE = 4
_local = threading.local()  # per thread: the parents whose cascade runs now


def _ending() -> set[UUID]:
    """Parents whose cascade this thread runs now (a child it cancels does not re-enter)."""
    if not hasattr(_local, "ending"):
        _local.ending = set()
    ending: set[UUID] = _local.ending
    return ending


@dataclass(frozen=True)
class Region:
    index: int
    x: int
    y: int
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Plan:
    width: int
    height: int
    tile_size: int
    depth: int  # a region yields levels L-1 … L-1-depth
    regions: tuple[Region, ...]

    @property
    def levels(self) -> int:
        return levels_for(self.width, self.height)

    @property
    def block(self) -> int:
        return self.tile_size << self.depth

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "tileSize": self.tile_size,
            "depth": self.depth,
            "regions": [asdict(r) for r in self.regions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        regions = tuple(Region(**r) for r in data["regions"])
        return cls(data["width"], data["height"], data["tileSize"], data["depth"], regions)


def levels_for(width: int, height: int) -> int:
    """Deep Zoom levels: 1×1 up to full size, halving each time (ceil(log2(side)) + 1)."""
    return (max(width, height) - 1).bit_length() + 1


def _cuts(size: int, parts: int, block: int) -> list[int]:
    """Boundaries 0 < … < size splitting `size` into `parts` spans of whole blocks (the
    last one takes the remainder), as even as the blocks allow."""
    cuts = [0]
    for i in range(1, parts):
        cut = round(i * size / parts / block) * block
        cuts.append(max(cut, cuts[-1] + block))
    cuts.append(size)
    return cuts


def plan(
    width: int, height: int, tile_size: int, region_pixels: int, depth: int | None = None
) -> Plan:
    """Regions of about `region_pixels` each, squarish, aligned to 2**depth tiles."""
    side = math.sqrt(region_pixels)
    if depth is None:
        depth = max(1, int(math.log2(max(side / (BLOCKS_PER_SIDE * tile_size), 1))))
    block = tile_size << depth
    across, down = max(1, width // block), max(1, height // block)
    wanted = max(1, math.ceil(width * height / region_pixels))
    nx = min(across, wanted, max(1, round(math.sqrt(wanted * width / height))))
    ny = min(down, max(1, math.ceil(wanted / nx)))
    nx = min(across, max(1, math.ceil(wanted / ny)))
    xs, ys = _cuts(width, nx, block), _cuts(height, ny, block)
    regions = tuple(
        Region(r * nx + c, xs[c], ys[r], xs[c + 1] - xs[c], ys[r + 1] - ys[r])
        for r in range(ny)
        for c in range(nx)
    )
    return Plan(width, height, tile_size, depth, regions)


def wanted(width: int, height: int, layout: str, overlap: int, random_access: bool) -> bool:
    """Whether a slide this big, with these options and reader, is tiled as regions."""
    from slipway.config import settings

    s = settings()
    return (
        random_access
        and layout == "archive"
        and overlap == 0
        and width * height > s.tile_fanout_pixels
    )


# orchestration (jobs) ------------------------------------------------------------------


def fan_out(job: Any, layout: Plan, worker: str) -> list[NewEvent]:
    """The `tile` job's result when it fans out: it waits, and a job per region."""
    from slipway import jobs

    fanout_id = str(uuid4())
    common = {"parentId": str(job.id), "fanoutId": fanout_id, "plan": layout.to_json()}
    waiting = NewEvent(
        "v1.job.waiting",
        "job",
        job.id,
        {"worker": worker, "fanoutId": fanout_id, "regions": len(layout.regions)},
    )
    children = [
        jobs.queued(
            REGION,
            job.owner,
            job.upload_id,
            common | {"region": region.index},
            max_attempts=job.max_attempts,
            parent_id=job.id,
        )
        for region in layout.regions
    ]
    return [waiting, *children]


def _parent(conn: db.Connection, job: Any) -> dict[str, Any] | None:
    """The child's parent, locked, if it still waits for this fan-out."""
    row = conn.execute(SQL["lock"], {"id": UUID(job.payload["parentId"])}).fetchone()
    if row is None or row["status"] != WAITING:
        return None
    if (row["result"] or {}).get("fanoutId") != job.payload["fanoutId"]:
        return None
    return dict(row)


def _counts(conn: db.Connection, job: Any) -> tuple[int, int]:
    params = {"parent": UUID(job.payload["parentId"]), "fanout": job.payload["fanoutId"]}
    row = conn.execute(SQL["region_counts"], params).fetchone()
    assert row is not None
    return int(row["done"]), int(row["total"])


def after_success(conn: db.Connection, job: Any, worker: str) -> tuple[list[NewEvent], list[str]]:
    """In the transaction of a child's success (after it is projected): the events that
    follow, and the job types to signal once committed. The last region queues the finish
    job; the finish ends the parent SUCCEEDED."""
    from slipway import jobs

    if job.type not in (REGION, FINISH):
        return [], []
    parent = _parent(conn, job)
    if parent is None:
        return [], []
    done, total = _counts(conn, job)
    progress = {"regionsDone": done, "regions": total}
    conn.execute(SQL["set_progress"], {"id": parent["id"], "progress": Jsonb(progress)})
    if job.type == FINISH:
        return [NewEvent("v1.job.succeeded", "job", parent["id"], {"worker": worker})], []
    if done < total:
        return [], []
    payload = {k: job.payload[k] for k in ("parentId", "fanoutId", "plan")}
    finish = jobs.queued(
        FINISH,
        job.owner,
        job.upload_id,
        payload,
        max_attempts=job.max_attempts,
        parent_id=parent["id"],
    )
    return [finish], [FINISH]


def on_end(conn: db.Connection, job: Any, code: str, message: str) -> list[NewEvent]:
    """In the transaction where `job` ends FAILED or CANCELLED for good: a parent's
    children are cancelled (queued ones at once, running ones asked to stop); a child's
    end fails (or cancels) its parent with its code, and its siblings are cancelled."""
    if job.type == PARENT:
        if job.id in _ending():
            return []
        _ending().add(job.id)
        try:
            _cancel_children(conn, job.id, except_id=None, by=job.owner)
        finally:
            _ending().discard(job.id)
        return []
    if job.type not in (REGION, FINISH):
        return []
    parent_id = UUID(job.payload["parentId"])
    if parent_id in _ending():
        return []  # cancelled by the parent's own cascade
    parent = _parent(conn, job)
    if parent is None:
        return []
    _ending().add(parent_id)
    try:
        _cancel_children(conn, parent_id, except_id=job.id, by=parent["owner"])
    finally:
        _ending().discard(parent_id)
    if code == "CANCELLED":
        by = message.removeprefix("cancelled by ")  # jobs._cancelled_events' sentence
        return [NewEvent("v1.job.cancelled", "job", parent_id, {"by": by})]
    what = f"region {job.payload['region']}" if job.type == REGION else "the top levels"
    failed = {"code": code, "message": f"{what}: {message}"}
    return [NewEvent("v1.job.failed", "job", parent_id, failed)]


def _cancel_children(conn: db.Connection, parent_id: UUID, except_id: UUID | None, by: str) -> None:
    """Cancel the parent's open children that no other transaction holds: one that does is
    being claimed or ended, and checks its parent itself (`check_parent`)."""
    from slipway import jobs

    rows = conn.execute(SQL["open_children"], {"parent": parent_id}).fetchall()
    for row in rows:
        if row["id"] != except_id:
            jobs.request_cancel(conn, row["id"], by, actor="system:fanout", strict=False)


def check_parent(job: Any) -> None:
    """A child stops (for good) if its parent no longer waits for it: cancelled, failed."""
    with db.connect() as conn:
        row = conn.execute(SQL["get"], {"id": UUID(job.payload["parentId"])}).fetchone()
    ok = (
        row is not None
        and row["status"] == WAITING
        and (row["result"] or {}).get("fanoutId") == job.payload["fanoutId"]
    )
    if not ok:
        status = row["status"] if row else "gone"
        raise SlipwayError(
            Code.CONFLICT, f"the slide's tile job is {status}; this part is not needed"
        )


def region_results(job: Any) -> list[dict[str, Any]]:
    """What each region of the finish job's fan-out stored, in region order."""
    params = {"parent": UUID(job.payload["parentId"]), "fanout": job.payload["fanoutId"]}
    with db.connect() as conn:
        rows = conn.execute(SQL["region_results"], params).fetchall()
    results = [dict(r["result"] or {}) for r in rows if r["status"] == "SUCCEEDED"]
    if len(results) != len(job.payload["plan"]["regions"]):
        raise SlipwayError(Code.CONFLICT, "not every region of this slide has succeeded")
    return results
