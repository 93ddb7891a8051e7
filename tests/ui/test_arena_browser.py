"""The Arena tab in Debian's chromium: blind rounds, the reveal, the vote rules, and the board against the CLI."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from playground.blind import png_chunks
from playground.providers import REGISTRY
from playground.settings import Settings
from tests.ui.conftest import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    RunningApp,
)

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
LABELS = [spec.label for spec in REGISTRY.values()]
NAME_WORDS = re.compile(r"\b(" + "|".join(re.escape(name) for name in REGISTRY) + r")\b", re.IGNORECASE)
IMAGE_URL = re.compile(r"/arena/image/[A-Za-z0-9_-]{20,}")
SHARED_LIMIT = 1


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (scripts/test does) or set CHROMIUM_PATH.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def contexts(chromium: Browser) -> Iterator[list[BrowserContext]]:
    """Two visitors: separate profiles, so separate owner ids in their browsers' storage."""
    made = [chromium.new_context(viewport={"width": 1300, "height": 1000}) for _ in range(2)]
    yield made
    for context in made:
        context.close()


@pytest.fixture
def web_page(contexts: list[BrowserContext]) -> Page:
    return contexts[0].new_page()


def hosts_named(html: str) -> list[str]:
    """Every provider label or name that appears in ``html``."""
    return [label for label in LABELS if label.lower() in html.lower()] + NAME_WORDS.findall(html)


def open_arena(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Arena").click()
    expect(page.locator("#arena-prompt textarea")).to_be_visible(timeout=WAIT_MS)


def start_round(page: Page, prompt: str, *, seen: bool = True) -> None:
    page.locator("#arena-prompt textarea").fill(prompt)
    page.locator("#arena-start").click()
    expect(page.locator("#arena-round img")).to_have_count(2, timeout=WAIT_MS)
    if seen:
        expect(page.locator("#arena-status")).to_contain_text("All images are in", timeout=WAIT_MS)


def vote(page: Page, choice: str) -> str:
    """Click a vote button; the status it leads to (recorded ✔ or refused ✘)."""
    page.locator(f"#arena-vote-{choice}").click()
    expect(page.locator("#arena-status")).to_have_text(re.compile(r"^\s*[✔✘]"), timeout=WAIT_MS)
    return page.locator("#arena-status").inner_text().strip()


def test_a_blind_round_a_vote_that_reveals_the_hosts_a_refused_second_vote_and_the_board_as_the_cli(web_page, ui_app):
    open_arena(web_page, ui_app.url)
    start_round(web_page, "a lighthouse on a cliff at dusk")
    assert hosts_named(web_page.locator("#arena-tab").inner_html()) == [], "the Arena tab names a host before the vote"
    images = web_page.locator("#arena-round img")
    sources = [images.nth(i).get_attribute("src") or "" for i in range(2)]
    assert all(IMAGE_URL.fullmatch(src) for src in sources), sources
    for src in sources:
        body = web_page.request.get(ui_app.url.rstrip("/") + src).body()
        assert set(png_chunks(body)) == {"IHDR", "IDAT", "IEND"}, "a blind copy carries no metadata chunk"
        assert not [label for label in LABELS if label.encode() in body]
    shown = [images.nth(i).evaluate("img => [img.naturalWidth, img.naturalHeight, img.clientWidth]") for i in range(2)]
    assert shown[0] == shown[1], "both images the same size, in the file and on the page"
    ARTIFACTS.mkdir(exist_ok=True)
    web_page.screenshot(path=ARTIFACTS / "screenshot-arena-round.png", full_page=True)

    assert vote(web_page, "A").startswith("✔ Vote recorded: A is better")
    reveal = web_page.locator("#arena-reveal").inner_text()
    assert len([label for label in LABELS if label in reveal]) >= 1 and "your vote" in reveal
    assert re.search(r"\d+\.\d s", reveal), "latencies are revealed"
    web_page.screenshot(path=ARTIFACTS / "screenshot-arena-reveal.png", full_page=True)
    web_page.locator("#arena-vote-B").click()
    expect(web_page.locator("#arena-status")).to_contain_text("already voted on this round", timeout=WAIT_MS)
    expect(web_page.locator("#arena-prompt textarea")).to_have_value("a lighthouse on a cliff at dusk")
    expect(web_page.locator("#arena-start")).to_have_text("Next round")

    # The board in the tab and `leaderboard --json` on the same database show the same numbers.
    shown = [row for row in board_cells(web_page) if row[1]]  # a model's heading line names no target
    assert_same_numbers(shown, leaderboard_json(ui_app.service.settings))
    web_page.screenshot(path=ARTIFACTS / "screenshot-arena-board.png", full_page=True)


@pytest.fixture
def shared_page(ui_app: RunningApp) -> Iterator[str]:
    """The running page with a shared page's vote limit (build_page sets it when share=True): once a minute."""
    arena = ui_app.page.arena.arena
    before, arena.votes_per_minute = arena.votes_per_minute, SHARED_LIMIT
    try:
        yield ui_app.url
    finally:
        arena.votes_per_minute = before


def test_two_visitors_of_a_shared_page_each_need_loaded_images_have_their_own_limit_and_one_vote(contexts, shared_page):
    first, second = (context.new_page() for context in contexts)
    served: list[str] = []

    def only_the_first(route: Route) -> None:
        served.append(route.request.url)
        route.continue_() if len(served) == 1 else route.abort()

    first.route("**/arena/image/*", only_the_first)  # the second image never arrives in this browser
    open_arena(first, shared_page)
    open_arena(second, shared_page)
    start_round(first, "a red fox in the snow", seen=False)
    expect(first.locator("#arena-status")).to_contain_text("Look at both images", timeout=WAIT_MS)
    assert vote(first, "A").startswith("✘ Every image must finish loading")
    expect(first.locator("#arena-reveal")).to_have_text("")  # a refused vote reveals nothing
    first.unroute("**/arena/image/*")

    for n in range(SHARED_LIMIT):
        start_round(first, f"a windmill, take {n}")
        assert vote(first, "B").startswith("✔ Vote recorded")
    start_round(first, "a windmill, one too many")
    assert vote(first, "A").startswith(f"✘ You voted on {SHARED_LIMIT} rounds in the last minute")
    expect(first.locator("#arena-reveal")).to_have_text("")

    start_round(second, "a windmill, another visitor")  # the first visitor's limit is not the second's
    assert vote(second, "tie").startswith("✔ Vote recorded: a tie")
    second.locator("#arena-vote-A").click()
    expect(second.locator("#arena-status")).to_contain_text("already voted", timeout=WAIT_MS)


def board_cells(page: Page) -> list[list[str]]:
    """The board's body rows as shown (opening the Leaderboard builds it)."""
    page.get_by_text("Leaderboard", exact=True).click()
    expect(page.locator("#arena-board-note")).to_contain_text("votes", timeout=WAIT_MS)
    rows = page.locator("#arena-board [role=row]").filter(visible=True)  # it also keeps hidden rows, for sizing
    expect(rows.nth(1)).to_be_visible(timeout=WAIT_MS)  # the header, then at least one row of the board
    cells = [[c.strip() for c in rows.nth(i).locator("[role=gridcell]").all_inner_texts()] for i in range(rows.count())]
    return [row for row in cells if row]  # the header row has column headers, not cells


def leaderboard_json(settings: Settings) -> list[dict]:
    """What ``python -m playground leaderboard --json --same-model`` prints for these settings' data dir.

    Run on a thread of its own: the CLI runs its own event loop, and sync Playwright holds this thread's.
    """
    from playground.cli import main

    def run() -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["leaderboard", "--json", "--same-model"], settings=settings) == 0
        return out.getvalue()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return json.loads(pool.submit(run).result(timeout=60))


def assert_same_numbers(shown: list[list[str]], rows: list[dict]) -> None:
    assert rows and len(shown) == len(rows)
    for cells, row in zip(shown, rows, strict=True):
        assert cells[1] == row["label"] and cells[4] == str(row["votes"])
        assert cells[2] == f"{row['rating']:.0f}" and cells[5] == f"{row['win_rate']:.0%}"
        if row["rank"] is not None:
            assert cells[0] == str(row["rank"]) and cells[3] == f"{row['lower']:.0f} to {row['upper']:.0f}"
        if row["p50_latency_s"] is not None:
            assert cells[6] == f"{row['p50_latency_s']:.1f} s"
            assert cells[7] == f"{row['success_rate']:.0%} of {row['jobs']}"
