"""Finding 10, lifecycles: Stop or a closed tab left jobs "running" in history with nobody waiting for them.

Chosen: a run whose visitor leaves is stopped, as Stop does; its jobs are kept as "stopped" with their task ids,
so they can be resumed from History (nothing is submitted twice).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.security.conftest import wait_for
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.ui.test_browser import choose

pytestmark = pytest.mark.browser
PROMPT = "a lighthouse that never finishes sandbox:never"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def job_states(data_dir: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        query = "SELECT j.state, j.task_id FROM jobs j JOIN runs r ON r.run_id = j.run_id WHERE r.prompt = ?"
        return db.execute(query, (PROMPT,)).fetchall()


def test_closing_the_tab_mid_run_records_its_jobs_as_stopped_with_their_task_ids(chromium, shared_app):
    context = chromium.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.goto(shared_app.url)
    page.locator("#text-prompt textarea").fill(PROMPT)
    choose(page, "text", ["KIE AI"])  # KIE AI alone
    page.locator("#text-generate").click()
    expect(page.locator("#text-kie-pro-status")).to_contain_text("running", timeout=20_000)
    wait_for(lambda: [s for s, _ in job_states(shared_app.data_dir)] == ["running"], 20, "the job to be running")
    with page.expect_event("dialog") as asked:
        page.close(run_before_unload=True)  # the visitor closes the tab: the browser asks first...
    assert asked.value.type == "beforeunload"
    asked.value.accept()  # ...and they leave
    context.close()
    wait_for(lambda: [s for s, _ in job_states(shared_app.data_dir)] == ["stopped"], 20, "the job to be stopped")
    ((_, task_id),) = job_states(shared_app.data_dir)
    assert task_id, "a stopped job keeps its task id, to be resumed"
