"""Request bodies (validated; strict types so `"size": "12"` is a 400) and the response
shapes, which document the contract in the OpenAPI spec. Field names are the contract's
camelCase."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StrictInt, StrictStr

from slipway import upload_rules as rules
from slipway.config import settings

# requests ------------------------------------------------------------------------------
# The constraints are the API's own rules (slipway.upload_rules, which uploads.validate
# enforces), so that the OpenAPI document says exactly what is accepted: a request it
# allows is never refused as bad input.


def _integral(value: Any) -> Any:
    """JSON has one number type: `1.0` is the integer 1 (and `"1"` still a 400)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]
HexDigest = Annotated[StrictStr, Field(pattern=rules.HEX_DIGEST)]
PartNumber = Annotated[StrictInt, Field(ge=1, le=rules.S3_MAX_PARTS), BeforeValidator(_integral)]


def _at_most_the_configured_size(schema: dict[str, Any]) -> None:
    schema["maximum"] = settings().max_upload_size  # validate() enforces it (configurable)


class CreateUpload(BaseModel):
    kind: Literal["slide", "telemetry"]
    filename: StrictStr = Field(
        min_length=1,
        max_length=255,
        pattern=rules.FILENAME,
        description="a bare file name: at most 255 bytes of UTF-8, no path, no control "
        "or format characters",
    )
    size: JsonInt = Field(
        ge=1,
        description="bytes; at most the configured maximum (20 GiB by default)",
        json_schema_extra=_at_most_the_configured_size,
    )
    contentType: StrictStr = Field(
        "application/octet-stream", max_length=255, pattern=rules.MEDIA_TYPE
    )
    sha256: HexDigest | None = Field(None, description="hex SHA-256 of the whole file")
    checksumParts: StrictBool = Field(
        False, description="multipart only: sign each part's SHA-256 (give them to /parts)"
    )


class PartWanted(BaseModel):
    partNumber: PartNumber
    sha256: HexDigest | None = Field(None, description="hex SHA-256 of this part")


class SignParts(BaseModel):
    partNumbers: list[PartNumber] = Field(default_factory=list, max_length=1000)
    parts: list[PartWanted] = Field(default_factory=list, max_length=1000)


class CompletedPart(BaseModel):
    partNumber: PartNumber
    etag: StrictStr = Field(max_length=1024)


class Complete(BaseModel):
    parts: list[CompletedPart] | None = Field(None, max_length=rules.S3_MAX_PARTS)


# responses -----------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class SignedPart(BaseModel):
    partNumber: int
    url: str
    headers: dict[str, str] = {}


class HeldPart(BaseModel):
    partNumber: int
    etag: str
    size: int


class UploadCreated(BaseModel):
    uploadId: str
    state: Literal["pending"]
    expiresAt: str
    method: Literal["PUT", "MULTIPART"]
    url: str | None = None
    headers: dict[str, str] | None = None
    partSize: int | None = None
    partCount: int | None = None
    checksumParts: bool | None = None
    resumableUntil: str | None = None
    parts: list[SignedPart] | None = None


class PartsSigned(BaseModel):
    uploadId: str
    partSize: int
    partCount: int
    expiresAt: str
    parts: list[SignedPart]
    uploaded: list[HeldPart]


class JobRef(BaseModel):
    jobId: str
    type: str
    status: str


class UploadView(BaseModel):
    uploadId: str
    kind: str
    filename: str
    contentType: str
    size: int
    state: Literal["pending", "ready", "failed"]
    method: str
    sha256: str | None
    blake3: str | None
    deduplicated: bool
    error: ErrorDetail | None
    jobs: list[JobRef]
    createdAt: str
    updatedAt: str


class JobView(BaseModel):
    jobId: str
    uploadId: str | None
    type: str
    status: Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    attemptCount: int
    maxAttempts: int
    error: ErrorDetail | None
    createdAt: str
    updatedAt: str
    startedAt: str | None
    finishedAt: str | None
    nextRetryAt: str | None = None
    progress: dict[str, Any] | None = Field(
        default=None, description="what the running attempt last reported, e.g. tiles"
    )
    cancelRequestedAt: str | None = Field(
        default=None,
        description="a RUNNING job asked to stop (POST /v1/jobs/{id}/cancel answered 202); "
        "it ends CANCELLED",
    )
    correlationId: str | None = Field(
        default=None, description="the id of the API request that caused the job, in its logs"
    )
    traceId: str | None = Field(default=None, description="its X-Ray trace, on AWS")


JobStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]


class JobPage(BaseModel):
    jobs: list[JobView]
    next: str | None


class Channel(BaseModel):
    name: str | None
    bitsPerSample: int | None


class SlideSource(BaseModel):
    """What the slide file itself says (API.md v1.1); unknown values are null."""

    format: str | None
    vendor: str | None
    width: int | None
    height: int | None
    levels: int | None
    mppX: float | None
    mppY: float | None
    objectivePower: float | None
    channels: list[Channel] | None
    compression: str | None


class SlideView(BaseModel):
    uploadId: str
    status: Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]
    jobId: str | None
    width: int | None
    height: int | None
    tileSize: int | None
    overlap: int | None
    format: str | None
    levels: int | None
    tileCount: int | None
    dziUrl: str | None
    viewerUrl: str | None
    source: SlideSource | None
    associated: dict[Literal["label", "macro", "thumbnail"], str] | None = Field(
        description="the associated images the file holds, each at a capability URL"
    )
    iiifUrl: str | None = Field(
        description="a IIIF Image API 3.0 service (level 0); null unless the pyramid has "
        "overlap 0 and JPEG tiles"
    )
    error: ErrorDetail | None


class IiifTiles(BaseModel):
    type: Literal["Tile"] = "Tile"
    width: int
    height: int
    scaleFactors: list[int]


class IiifSize(BaseModel):
    type: Literal["Size"] = "Size"
    width: int
    height: int


class IiifInfo(BaseModel):
    """A IIIF Image API 3.0 image information document (info.json)."""

    context: Literal["http://iiif.io/api/image/3/context.json"] = Field(alias="@context")
    id: str
    type: Literal["ImageService3"]
    protocol: Literal["http://iiif.io/api/image"]
    profile: Literal["level0"]
    width: int
    height: int
    tiles: list[IiifTiles]
    sizes: list[IiifSize]


class Finalised(BaseModel):
    sessionId: str
    pollUrl: str


class Stream(BaseModel):
    name: str
    rows: int
    parquetUrl: str


class SessionView(BaseModel):
    sessionId: str
    status: Literal["processing", "ready", "failed"]
    startTimeUtc: str
    endTimeUtc: str
    streams: list[Stream]
    failure: ErrorDetail | None = None


class SessionPage(BaseModel):
    sessions: list[SessionView]
    next: str | None


class LineScanTile(BaseModel):
    tileId: str
    state: Literal["pending", "ready", "failed"]
    attempts: int
    lastError: str | None = None
    sha256: str | None = None


class LineScan(BaseModel):
    scanId: str
    counts: dict[str, int]
    tiles: list[LineScanTile]


class EventOut(BaseModel):
    sequence: int
    createdAt: str
    eventType: str
    subjectKind: str
    subjectId: str | None
    actor: str
    payload: dict[str, Any]
    payloadDigest: str


class EventPage(BaseModel):
    events: list[EventOut]
    next: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    storage: str


# the operator's view (api/ops.py, slipway.stats) -------------------------------------------


class QueueFigures(BaseModel):
    type: str
    queued: int
    due: int = Field(description="queued and due now (not waiting for a retry time)")
    retrying: int = Field(description="queued again after a failed attempt")
    running: int
    oldestDueSince: str | None
    oldestDueAgeSeconds: float | None = Field(
        description="how long the oldest due job has waited to be claimed"
    )


class TypeThroughput(BaseModel):
    type: str
    finished: int
    perMinute: float
    byStatus: dict[str, int]


class Throughput(BaseModel):
    minutes: int
    types: list[TypeThroughput]


class FailureGroup(BaseModel):
    code: str
    count: int
    lastAt: str | None
    lastMessage: str
    types: list[str]
    jobIds: list[str] = Field(description="the latest failed jobs with this code, newest first")


class SlowJob(BaseModel):
    jobId: str
    type: str
    owner: str
    status: str
    uploadId: str | None
    startedAt: str | None
    finishedAt: str | None
    seconds: float = Field(description="from the first claim to the end")


class OpsStats(BaseModel):
    generatedAt: str
    windowHours: int
    queues: list[QueueFigures]
    throughput: Throughput
    failures: list[FailureGroup]
    slowest: list[SlowJob]
    uploads: dict[str, int] = Field(description="uploads created in the window, by state")


class OpsJob(JobView):
    owner: str
    correlationId: str | None = Field(description="the request that caused the job, if known")
    traceId: str | None = Field(description="its trace (X-Ray), if known")


def documented(
    model: type[BaseModel], status: int = 200, description: str = "OK", *errors: int
) -> dict[int, OpenAPIResponse]:
    """The `responses=` of a route: its success shape and the error statuses it uses."""
    out: dict[int, OpenAPIResponse] = {
        status: {"description": description, "content": {"application/json": {"model": model}}}
    }
    return out | failures(*errors)


def failures(*statuses: int) -> dict[int, OpenAPIResponse]:
    """Error statuses of a route, each with the contract's error body."""
    body: OpenAPIResponse = {
        "description": "error",
        "content": {"application/json": {"model": ErrorBody}},
    }
    return {status: body for status in statuses}


def media(status: int, description: str, *types: str) -> dict[int, OpenAPIResponse]:
    """The `responses=` of a route whose success body is not JSON (pages, images, XML)."""
    content: dict[str, Any] = {kind: {"schema": {"type": "string"}} for kind in types}
    return {status: {"description": description, "content": content}}
