"""Stable error codes: the same UPPER_SNAKE code in API bodies, job rows and sessions."""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    # request and identity
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    # uploads
    SIZE_MISMATCH = "SIZE_MISMATCH"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    PART_MISMATCH = "PART_MISMATCH"
    NOT_UPLOADED = "NOT_UPLOADED"
    UPLOAD_EXPIRED = "UPLOAD_EXPIRED"
    UPLOAD_ABANDONED = "UPLOAD_ABANDONED"
    NOT_MULTIPART = "NOT_MULTIPART"
    UPLOAD_NOT_READY = "UPLOAD_NOT_READY"
    # jobs
    JOB_NOT_CANCELLABLE = "JOB_NOT_CANCELLABLE"
    JOB_NOT_RETRYABLE = "JOB_NOT_RETRYABLE"
    WORKER_LOST = "WORKER_LOST"
    TRANSIENT = "TRANSIENT"
    # tile
    IMAGE_UNREADABLE = "IMAGE_UNREADABLE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_UNSUPPORTED = "IMAGE_UNSUPPORTED"
    # parse
    CSV_NO_TIME_COLUMN = "CSV_NO_TIME_COLUMN"
    CSV_NO_POSITION_COLUMNS = "CSV_NO_POSITION_COLUMNS"
    CSV_BAD_VALUE = "CSV_BAD_VALUE"
    CSV_LINE_TOO_LONG = "CSV_LINE_TOO_LONG"
    GPX_MALFORMED = "GPX_MALFORMED"
    GPX_NO_POINTS = "GPX_NO_POINTS"
    GPX_NO_TIMES = "GPX_NO_TIMES"
    GPX_ROUTE_ONLY = "GPX_ROUTE_ONLY"
    TCX_MALFORMED = "TCX_MALFORMED"
    TCX_NO_POINTS = "TCX_NO_POINTS"
    FIT_MALFORMED = "FIT_MALFORMED"
    FIT_NO_POSITIONS = "FIT_NO_POSITIONS"
    NMEA_MALFORMED = "NMEA_MALFORMED"
    NMEA_NO_FIX = "NMEA_NO_FIX"
    NMEA_NO_DATE = "NMEA_NO_DATE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    EMPTY_FILE = "EMPTY_FILE"
    # line-scan tiles
    STORAGE_FAILED = "STORAGE_FAILED"
    TILE_NOT_READY = "TILE_NOT_READY"


class SlipwayError(Exception):
    """An expected failure with a stable code; `status` is its HTTP status.

    `permanent` marks bad input: a job failing with it is not retried.
    """

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        status: int = 400,
        permanent: bool = True,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.permanent = permanent
        self.details = details or {}

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code.value, "message": self.message, **self.details}}


def not_found(what: str) -> SlipwayError:
    return SlipwayError(Code.NOT_FOUND, f"{what} not found", status=404)


def bad_request(message: str) -> SlipwayError:
    return SlipwayError(Code.BAD_REQUEST, message, status=400)


def conflict(code: Code, message: str) -> SlipwayError:
    return SlipwayError(code, message, status=409)
