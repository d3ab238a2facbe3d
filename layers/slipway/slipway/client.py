"""A client of the public HTTP API (API.md): what the CLI, the demo, the end-to-end
tests and the benchmarks use. It knows nothing the contract does not say.

Large files go up in parallel parts streamed from disk (memory does not grow with the
file), each part's SHA-256 signed into its URL; an interrupted upload resumes from the
parts storage already holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

Progress = Callable[[int], None]  # called with the number of bytes just sent


class ApiError(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


# The largest line-scan tile sent in the request body; larger ones (up to 5 MiB) go
# through a pre-signed PUT (docs/api.md, "Line-scan tiles").
INLINE_TILE_LIMIT = 4 * 1024 * 1024


def _api_error(reply: requests.Response) -> ApiError:
    try:
        error = reply.json()["error"]
        return ApiError(reply.status_code, error["code"], error["message"])
    except (ValueError, KeyError, TypeError):
        return ApiError(reply.status_code, "HTTP", reply.text[:300])


class FileSlice:
    """`length` bytes of a file from `offset`, read on demand: a request body whose length
    requests can see (so it sends Content-Length, which the URL's signature covers)."""

    def __init__(self, path: Path, offset: int, length: int, progress: Progress | None = None):
        self._file = path.open("rb")
        self._file.seek(offset)
        self._left = length
        self._length = length
        self._progress = progress

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._length - self._left

    def read(self, size: int = -1) -> bytes:
        if not self._left:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._file.read(size)
        self._left -= len(data)
        if self._progress and data:
            self._progress(len(data))
        if not self._left:
            self._file.close()
        return data


def sha256_of(path: Path, offset: int = 0, length: int | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        left = length if length is not None else os.path.getsize(path) - offset
        while left > 0:
            chunk = f.read(min(left, 4 * 1024 * 1024))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


@dataclass
class ResumeBook:
    """Where interrupted uploads are remembered: file identity → upload id."""

    path: Path

    @staticmethod
    def default() -> ResumeBook:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return ResumeBook(Path(base) / "slipway" / "uploads.json")

    @staticmethod
    def key(file: Path) -> str:
        st = file.stat()
        return f"{file.resolve()}:{st.st_size}:{st.st_mtime_ns}"

    def _load(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return {}

    def get(self, file: Path) -> str | None:
        return self._load().get(self.key(file))

    def put(self, file: Path, upload_id: str | None) -> None:
        book = self._load()
        if upload_id is None:
            book.pop(self.key(file), None)
        else:
            book[self.key(file)] = upload_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(book, indent=1))


class _BulkAdapter(HTTPAdapter):
    """Sends request bodies in 1 MiB blocks (urllib3's default is 16 KiB: a Python loop
    turn per block, which is what limits parallel part uploads)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = 1024 * 1024
        super().init_poolmanager(*args, **kwargs)


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_maxsize=32))
        self.session.mount("https://", HTTPAdapter(pool_maxsize=32))
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._storage = requests.Session()  # pre-signed URLs: no bearer token
        self._storage.mount("http://", _BulkAdapter(pool_maxsize=32))
        self._storage.mount("https://", _BulkAdapter(pool_maxsize=32))

    # --- the API ---------------------------------------------------------------------------

    def call(self, method: str, path: str, json_body: Any = None, **params: Any) -> Any:
        reply = self.session.request(
            method,
            f"{self.base_url}{path}",
            json=json_body,
            params={k: v for k, v in params.items() if v is not None},
            timeout=self.timeout + float(params.get("wait") or 0),
        )
        if reply.status_code >= 400:
            try:
                error = reply.json()["error"]
                raise ApiError(reply.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(reply.status_code, "HTTP", reply.text[:300]) from None
        return reply.json() if reply.content else None

    def create_upload(
        self,
        kind: str,
        filename: str,
        size: int,
        *,
        content_type: str = "application/octet-stream",
        sha256: str | None = None,
        checksum_parts: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": kind,
            "filename": filename,
            "size": size,
            "contentType": content_type,
        }
        if sha256:
            body["sha256"] = sha256
        if checksum_parts:
            body["checksumParts"] = True
        return dict(self.call("POST", "/v1/uploads", body))

    def sign_parts(self, upload_id: str, parts: list[tuple[int, str | None]]) -> dict[str, Any]:
        body = {"parts": [{"partNumber": n, **({"sha256": s} if s else {})} for n, s in parts]}
        return dict(self.call("POST", f"/v1/uploads/{upload_id}/parts", body))

    def complete(self, upload_id: str, parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        body = {"parts": parts} if parts is not None else None
        return dict(self.call("POST", f"/v1/uploads/{upload_id}/complete", body))

    def upload(self, upload_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/uploads/{upload_id}"))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/jobs/{job_id}"))

    def jobs(
        self,
        *,
        status: str | None = None,
        job_type: str | None = None,
        upload_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the caller's jobs, newest first: {"jobs": [...], "next"}."""
        return dict(
            self.call(
                "GET",
                "/v1/jobs",
                status=status,
                type=job_type,
                uploadId=upload_id,
                limit=limit,
                cursor=cursor,
            )
        )

    def retry_job(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/jobs/{job_id}/retry"))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/jobs/{job_id}/cancel"))

    def slide(self, upload_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/slides/{upload_id}"))

    def session_of(self, session_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/telemetry/sessions/{session_id}"))

    def finalise(self, upload_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/telemetry/uploads/{upload_id}/finalise"))

    def events(self, since: int = 0, limit: int = 100, wait: float | None = None) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/events", since=since, limit=limit, wait=wait))

    # --- line-scan tiles -------------------------------------------------------------------

    def put_tile(
        self,
        scan_id: str,
        tile_id: str,
        data: bytes,
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Store one tile (up to 5 MiB): in the request body up to INLINE_TILE_LIMIT, above
        it through a pre-signed PUT (a body through API Gateway and Lambda is at most 6 MB,
        base64 included), then complete. Returns the tile, `ready`."""
        path = f"/v1/line-scans/{scan_id}/tiles/{tile_id}"
        if len(data) <= INLINE_TILE_LIMIT:
            reply = self.session.put(
                f"{self.base_url}{path}",
                data=data,
                headers={"Content-Type": content_type},
                timeout=self.timeout,
            )
            if reply.status_code >= 400:
                raise _api_error(reply)
            return dict(reply.json())
        sha = hashlib.sha256(data).hexdigest()
        signed = dict(self.call("POST", f"{path}/upload", {"size": len(data), "sha256": sha}))
        upload = signed.pop("upload")
        if upload is None:
            return signed  # already stored with these bytes
        self.put(upload["url"], upload["headers"], data)
        return dict(self.call("POST", f"{path}/complete", {"sha256": sha}))

    def tile_bytes(self, scan_id: str, tile_id: str) -> bytes:
        reply = self.session.get(
            f"{self.base_url}/v1/line-scans/{scan_id}/tiles/{tile_id}", timeout=self.timeout
        )
        if reply.status_code >= 400:
            raise _api_error(reply)
        return reply.content

    def line_scan(self, scan_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/line-scans/{scan_id}"))

    # --- storage ---------------------------------------------------------------------------

    def put(self, url: str, headers: dict[str, str], body: Any) -> requests.Response:
        reply = self._storage.put(url, data=body, headers=headers, timeout=max(self.timeout, 300))
        if reply.status_code >= 300:
            raise ApiError(reply.status_code, "STORAGE", reply.text[:300])
        return reply

    def upload_bytes(
        self,
        kind: str,
        filename: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        declare_sha256: bool = True,
    ) -> dict[str, Any]:
        """A small upload in one PUT; returns the create response."""
        sha = hashlib.sha256(data).hexdigest() if declare_sha256 else None
        created = self.create_upload(
            kind, filename, len(data), content_type=content_type, sha256=sha
        )
        self.put(created["url"], created["headers"], data)
        return created

    def upload_file(
        self,
        path: Path,
        kind: str,
        *,
        content_type: str = "application/octet-stream",
        parallel: int = 8,
        progress: Progress | None = None,
        resume: ResumeBook | None = None,
        resume_id: str | None = None,
        declare_sha256: bool = False,
    ) -> str:
        """Upload a file (single PUT or parallel multipart, resuming if it can); returns
        the upload id once storage holds every byte and complete was called."""
        size = path.stat().st_size
        upload_id = resume_id or (resume.get(path) if resume else None)
        if upload_id is None:
            sha = sha256_of(path) if declare_sha256 else None
            created = self.create_upload(
                kind, path.name, size, content_type=content_type, sha256=sha, checksum_parts=True
            )
            upload_id = created["uploadId"]
            if created["method"] == "PUT":
                self.put(created["url"], created["headers"], FileSlice(path, 0, size, progress))
                self.complete(upload_id)
                return str(upload_id)
            if resume:
                resume.put(path, upload_id)
        self._send_parts(upload_id, path, parallel, progress)
        self.complete(upload_id)
        if resume:
            resume.put(path, None)
        return str(upload_id)

    def _send_parts(
        self, upload_id: str, path: Path, parallel: int, progress: Progress | None
    ) -> None:
        state = self.sign_parts(upload_id, [])  # what storage already holds
        part_size, count = int(state["partSize"]), int(state["partCount"])
        size = path.stat().st_size
        held = {p["partNumber"] for p in state["uploaded"]}
        if progress:
            progress(sum(p["size"] for p in state["uploaded"]))
        todo = [n for n in range(1, count + 1) if n not in held]

        def send(number: int) -> None:
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            checksum = sha256_of(path, offset, length)
            signed = self.sign_parts(upload_id, [(number, checksum)])["parts"][0]
            for attempt in range(4):
                try:
                    self.put(
                        signed["url"], signed["headers"], FileSlice(path, offset, length, progress)
                    )
                    return
                except (requests.ConnectionError, ApiError):
                    if attempt == 3:
                        raise
                    time.sleep(2**attempt)
                    signed = self.sign_parts(upload_id, [(number, checksum)])["parts"][0]

        with ThreadPoolExecutor(max(1, parallel)) as pool:
            futures: list[Future[None]] = [pool.submit(send, n) for n in todo]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # re-raise the first failure
            for future in futures:
                future.result()

    # --- waiting ---------------------------------------------------------------------------

    def wait_for_upload(self, upload_id: str, timeout: float = 300) -> dict[str, Any]:
        """The upload once verified: state `ready` or `failed`."""
        return self.wait_until(
            lambda: self.upload(upload_id), lambda u: u["state"] != "pending", timeout=timeout
        )

    def wait_until(
        self,
        fetch: Callable[[], dict[str, Any]],
        done: Callable[[dict[str, Any]], bool],
        timeout: float = 300,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            current = fetch()
            if done(current):
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"still not done after {timeout:.0f} s: {current}")
            time.sleep(interval)


def parts_needed(size: int, part_size: int) -> int:
    return math.ceil(size / part_size)
