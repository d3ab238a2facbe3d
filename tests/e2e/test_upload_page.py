"""The upload page in a real browser (Debian's Chromium, headless, driven by Playwright):
a 200 MB slide through the real stack, reloaded mid-way, resumed from the parts storage
already holds (none of them sent again), finished, tiled and linked to its viewer; a
telemetry file dropped beside it becomes a session. A screenshot stays with the test's
output (its tmp_path)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pyvips
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from slipway.client import Client
from tests.support import CHROMIUM_FLAGS, FIXTURES, TUNING, chromium

PART_SIZE = int(TUNING["SLIPWAY_PART_SIZE"])
MINUTE = 60_000  # Playwright counts milliseconds


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    expect.set_options(timeout=MINUTE)  # a page on a busy machine, not Playwright's 5 s
    try:
        with sync_playwright() as running:
            yield running
    finally:
        expect.set_options(timeout=5_000)


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
    try:
        yield launched
    finally:
        launched.close()


@dataclass
class PartPuts:
    """Every part PUT the page sends to storage, by upload id: started and stored."""

    phase: str = "before"
    started: list[tuple[str, str, int]] = field(default_factory=list)
    stored: list[tuple[str, str, int]] = field(default_factory=list)

    @staticmethod
    def part(request: Request) -> tuple[str, int] | None:
        url = urlsplit(request.url)
        numbers = parse_qs(url.query).get("partNumber")
        if request.method != "PUT" or not numbers or "/incoming/" not in url.path:
            return None
        return url.path.rsplit("/", 1)[-1], int(numbers[0])

    def watch(self, page: Page) -> None:
        def on_request(request: Request) -> None:
            found = self.part(request)
            if found:
                self.started.append((self.phase, *found))

        def on_finished(request: Request) -> None:
            found = self.part(request)
            response = request.response()
            if found and response is not None and response.status == 200:
                self.stored.append((self.phase, *found))

        page.on("request", on_request)
        page.on("requestfinished", on_finished)

    def numbers(self, kind: str, upload_id: str, phase: str) -> list[int]:
        rows = self.started if kind == "started" else self.stored
        return [n for p, u, n in rows if u == upload_id and p == phase]


def wait_for(page: Page, check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Let the page run (its events reach this process meanwhile) until `check` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        page.wait_for_timeout(100)


def make_slide(path: Path) -> int:
    """An 8192 × 8192 RGB TIFF, uncompressed: 201 MB of pixels a scanner could have made."""
    noise = pyvips.Image.gaussnoise(8192, 8192, mean=128, sigma=60)
    image = noise.bandjoin([noise.rot90(), noise.flip("horizontal")]).cast("uchar")
    image.copy(interpretation="srgb").tiffsave(str(path), compression="none")
    return path.stat().st_size


def drop(page: Page, name: str, text: str) -> None:
    """Drop a file on the page's drop zone, as a drag from the desktop does."""
    page.evaluate(
        """([name, text]) => {
            const data = new DataTransfer();
            const options = {type: "text/csv", lastModified: 1767225600000};
            data.items.add(new File([text], name, options));
            const how = {dataTransfer: data, bubbles: true, cancelable: true};
            const drop = new DragEvent("drop", how);
            document.querySelector("#drop").dispatchEvent(drop);
        }""",
        [name, text],
    )


def sign_in(page: Page, api: str, user: str) -> None:
    page.goto(f"{api}/v1/upload")
    page.fill("#dev-user", user)
    page.click("#dev-signin button[type=submit]")
    expect(page.locator("#who-text")).to_contain_text(f"Signed in as {user}")


def test_the_page_is_served_without_a_token_and_runs_only_its_own_files(api: str) -> None:
    page = requests.get(f"{api}/v1/upload", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert 'data-environment="local"' in page.text
    for name in ("upload/upload.js", "upload/session.js", "upload/book.js", "uppy/uppy.min.js"):
        script = requests.get(f"{api}/v1/static/{name}", timeout=30)
        assert script.status_code == 200, name
        assert script.headers["Content-Type"] == "text/javascript"
    css = requests.get(f"{api}/v1/static/upload/upload.css", timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"] == "text/css"
    for bad in ("upload/..%2Fupload.html", "upload/nothing.js", "upload/upload.html", "uppy/x.py"):
        assert requests.get(f"{api}/v1/static/{bad}", timeout=30).status_code == 404, bad


def test_the_development_sign_in_mints_a_token_the_api_takes(api: str) -> None:
    signed = requests.post(f"{api}/v1/dev/sign-in", json={"user": "quinn"}, timeout=30)
    assert signed.status_code == 200, signed.text
    quinn = Client(api, signed.json()["token"])
    created = quinn.create_upload("telemetry", "a.csv", 10, content_type="text/csv")
    assert quinn.upload(created["uploadId"])["state"] == "pending"
    bad = requests.post(f"{api}/v1/dev/sign-in", json={"user": "a\nb"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_REQUEST"


def test_a_200_mb_slide_resumes_after_a_reload_without_sending_a_stored_part_again(
    api: str, client_for: Callable[..., Client], browser: Browser, tmp_path: Path
) -> None:
    slide = tmp_path / "big-slide.tif"
    size = make_slide(slide)
    assert size > 200 * 10**6
    part_count = math.ceil(size / PART_SIZE)
    (tmp_path / "notes.bin").write_bytes(b"what is this?")
    ride = (FIXTURES / "telemetry" / "sample_gnss_10hz.csv").read_text()
    pia = client_for("pia")

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(MINUTE)
    puts = PartPuts()
    puts.watch(page)
    sign_in(page, api, "pia")

    # files in: the kind by extension, or the user's choice
    page.set_input_files("#picker", [slide, tmp_path / "notes.bin"])
    drop(page, "ride.csv", ride)
    row = page.locator('li.file[data-name="big-slide.tif"]')
    session_row = page.locator('li.file[data-name="ride.csv"]')
    unknown = page.locator('li.file[data-name="notes.bin"]')
    expect(row.locator(".kind-why")).to_contain_text("slide by its extension .tif")
    expect(session_row.locator(".kind-why")).to_contain_text("telemetry by its extension .csv")
    expect(unknown.locator(".kind-why")).to_contain_text("choose a kind")
    expect(unknown.locator(".start")).to_be_disabled()
    unknown.locator(".remove").click()
    page.click("#start-all")

    # parallel parts, progress, speed and ETA; pause stops sending, resume goes on
    expect(row).to_have_attribute("data-state", "uploading")
    upload_id = row.get_attribute("data-upload-id") or ""
    wait_for(page, lambda: len(puts.numbers("stored", upload_id, "before")) >= 4, "4 parts")
    expect(row.locator(".eta")).to_contain_text("left")
    expect(row.locator(".speed")).to_contain_text("B/s")
    row.locator(".pause").click()
    expect(row).to_have_attribute("data-state", "paused")
    page.wait_for_timeout(1000)
    sent = len(puts.numbers("started", upload_id, "before"))
    page.wait_for_timeout(2000)
    assert len(puts.numbers("started", upload_id, "before")) == sent, "paused, yet it sent"
    row.locator(".pause").click()
    expect(row).to_have_attribute("data-state", "uploading")

    # reload mid-way: the page finds the upload again, and storage says what it holds
    wait_for(
        page,
        lambda: len(puts.numbers("stored", upload_id, "before")) >= part_count // 3,
        "a third of the parts",
    )
    page.reload()
    puts.phase = "after"
    expect(row).to_have_attribute("data-state", "interrupted")
    page.wait_for_timeout(1500)  # parts in flight when the page went are done or dropped
    held = {p["partNumber"] for p in pia.sign_parts(upload_id, [])["uploaded"]}
    assert 0 < len(held) < part_count, (len(held), part_count)
    assert set(puts.numbers("stored", upload_id, "before")) <= held

    page.set_input_files("#picker", slide)  # the same file, chosen again
    expect(row).to_have_attribute("data-state", "ready", timeout=8 * MINUTE)

    resent = set(puts.numbers("started", upload_id, "after"))
    assert resent.isdisjoint(held), f"parts sent again: {sorted(resent & held)}"
    # any other part came after the reload, or was in flight then and kept by storage
    in_flight = set(puts.numbers("started", upload_id, "before")) - held
    unaccounted = (
        set(range(1, part_count + 1)) - held - set(puts.numbers("stored", upload_id, "after"))
    )
    assert unaccounted <= in_flight, sorted(unaccounted)
    print(f"{part_count} parts: {len(held)} held at the reload, {len(resent)} sent after it")

    # the processing status, and its links
    upload = pia.upload(upload_id)
    assert upload["state"] == "ready" and upload["size"] == size
    assert pia.slide(upload_id)["status"] == "SUCCEEDED"
    viewer = row.locator(".links a", has_text="Open in the viewer")
    assert (viewer.get_attribute("href") or "").startswith(f"{api}/v1/slides/{upload_id}/viewer/")
    expect(row.locator(".status")).to_contain_text("8192 × 8192 px")
    expect(session_row).to_have_attribute("data-state", "ready", timeout=3 * MINUTE)
    session_id = session_row.get_attribute("data-session-id") or ""
    assert pia.session_of(session_id)["status"] == "ready"
    expect(session_row.locator(".links a", has_text="gnss_pvt.parquet")).to_have_count(1)

    shot = tmp_path / "upload-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_an_upload_resumes_after_a_browser_restart_and_shows_why_it_failed(
    api: str, client_for: Callable[..., Client], playwright: Playwright, tmp_path: Path
) -> None:
    """The browser goes away mid-upload; started again on the same profile, the page still
    knows the upload (localStorage), the user chooses the file again and only the missing
    parts go. The bytes are no image: the status says so, with its code."""
    data = tmp_path / "scan.svs"
    data.write_bytes(os.urandom(12 * PART_SIZE + 12345))
    part_count = 13
    profile = tmp_path / "profile"
    puts = PartPuts()
    ravi = client_for("ravi")

    def start_browser() -> tuple[BrowserContext, Page]:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium(), args=CHROMIUM_FLAGS
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(MINUTE)
        puts.watch(page)
        sign_in(page, api, "ravi")  # a restart forgets the token (sessionStorage)
        return context, page

    context, page = start_browser()
    page.set_input_files("#picker", data)
    page.click("#start-all")
    row = page.locator('li.file[data-name="scan.svs"]')
    expect(row).to_have_attribute("data-state", "uploading")
    upload_id = row.get_attribute("data-upload-id") or ""
    wait_for(page, lambda: len(puts.numbers("stored", upload_id, "before")) >= 3, "3 parts")
    context.close()  # the browser quits mid-upload
    puts.phase = "after"
    held = {p["partNumber"] for p in ravi.sign_parts(upload_id, [])["uploaded"]}
    assert 0 < len(held) < part_count, (len(held), part_count)

    context, page = start_browser()
    try:
        row = page.locator('li.file[data-name="scan.svs"]')
        expect(row).to_have_attribute("data-state", "interrupted")
        expect(row).to_have_attribute("data-upload-id", upload_id)
        page.set_input_files("#picker", data)
        expect(row).to_have_attribute("data-state", "failed", timeout=5 * MINUTE)
        expect(row.locator(".status .code")).to_have_text("IMAGE_UNSUPPORTED")
    finally:
        context.close()
    resent = set(puts.numbers("started", upload_id, "after"))
    assert resent.isdisjoint(held), f"parts sent again: {sorted(resent & held)}"
    assert ravi.upload(upload_id)["state"] == "ready"
