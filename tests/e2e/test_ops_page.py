"""The operator page in a real browser (Debian's Chromium, headless, driven by Playwright):
a token pasted in, a real failed tile job listed under its code, its detail (code,
message, owner) opened from the link, and the Retry button re-queueing it. The screenshot
stays in the test's tmp_path (pytest keeps the last runs' under its basetemp)."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pyvips

from slipway.client import Client
from slipway.errors import Code
from tests.e2e.test_ops_api import failed_tile_job
from tests.support import CHROMIUM_FLAGS, chromium, token

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def page() -> Iterator[Page]:
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("this test needs Playwright: .venv/bin/pip install -r requirements-dev.txt")
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def test_failed_jobs_show_with_their_codes_and_retry_from_the_page(
    api: str, client_for: Callable[..., Client], page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect  # the page's policy forbids wait_for_function's eval

    owner = client_for(f"page-owner-{uuid.uuid4().hex[:8]}")
    job = failed_tile_job(owner)
    job_id = job["jobId"]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(  # a CSP violation is one; the 403 asked for below is a resource error, not one
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )

    page.goto(f"{api}/v1/ops")
    page.wait_for_selector("#status.warn")  # no token yet: it asks for one
    assert "token" in page.inner_text("#status")

    page.fill("#token", token("page-reader"))  # no ops:read: the API's 403, shown
    page.click("#signin button[type=submit]")
    expect(page.locator("#status")).to_contain_text("FORBIDDEN")
    assert "ops:read" in page.inner_text("#status")

    page.fill("#token", token("page-operator", "ops:read", "ops:write"))
    page.click("#signin button[type=submit]")
    page.wait_for_selector("body[data-loaded]")
    row = page.locator(f"#failures tr[data-code={Code.IMAGE_UNSUPPORTED.value}]")
    link = row.locator(f"a[data-job-id='{job_id}']")
    link.wait_for()
    assert row.locator("td.code").inner_text() == Code.IMAGE_UNSUPPORTED
    assert page.locator("#throughput tr[data-type=tile]").count() == 1, "it ended this hour"
    assert page.evaluate("sessionStorage.getItem('slipway.opsToken')"), "kept for the tab"

    link.click()
    page.wait_for_selector("#job.open[data-status=FAILED]")
    facts = {
        name: page.inner_text(f"#job-facts dd[data-fact='{name}']")
        for name in ("status", "code", "message", "owner", "type", "correlation id")
    }
    assert facts["code"] == job["error"]["code"] and facts["message"] == job["error"]["message"]
    assert facts["owner"].startswith("page-owner-") and facts["type"] == "tile"
    shot = tmp_path / "ops-page.png"
    page.screenshot(path=str(shot), full_page=True)
    picture = pyvips.Image.new_from_file(str(shot))
    assert picture.width >= 1400 and picture.deviate() > 10, "a page was drawn, not a blank"
    print(f"screenshot: {shot}")

    assert page.is_enabled("#retry")
    page.click("#retry")
    expect(page.locator("#retry-result")).to_have_text("re-queued", timeout=30_000)
    again = owner.wait_until(
        lambda: owner.job(job_id), lambda j: j["status"] == "FAILED", timeout=120
    )
    assert again["attemptCount"] == 1 and again["finishedAt"] > job["finishedAt"], (
        "the page's retry re-queued it and it ran again"
    )
    page.screenshot(path=str(tmp_path / "ops-page-after-retry.png"), full_page=True)

    page.click("#forget")  # the local stack's development sign-in mints an operator's token
    expect(page.locator("#status")).to_contain_text("paste a token")
    assert page.evaluate("sessionStorage.getItem('slipway.opsToken')") is None
    page.fill("#dev-user", "page-dev-operator")
    page.click("#dev-signin button[type=submit]")
    expect(page.locator("#status")).to_contain_text("updated")
    expect(row.locator(f"a[data-job-id='{job_id}']")).to_be_visible()
    assert not errors, errors
