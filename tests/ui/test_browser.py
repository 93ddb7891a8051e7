"""The page in Debian's chromium: generate, edit with before/after, chain an edit, reopen from History, stop, keys."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.ui.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, RunningApp

pytestmark = pytest.mark.browser

EXAMPLE = Path(__file__).resolve().parents[2] / "playground" / "ui" / "assets" / "example-input.png"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium, for this module only: sync Playwright holds an event loop while it runs,
    which would break the asyncio tests of later modules."""
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: install it (apt-get install chromium; scripts/test does) "
            "or set CHROMIUM_PATH. The browser test must run, not skip."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def web_page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser profile per test: its own local storage, so saved keys do not carry over."""
    context = chromium.new_context(viewport={"width": 1300, "height": 1000})
    yield context.new_page()
    context.close()


def open_page(page: Page, app: RunningApp) -> None:
    page.goto(app.url)
    expect(page.locator("#text-prompt textarea")).to_be_visible(timeout=WAIT_MS)


def open_tab(page: Page, name: str) -> None:
    """Open a tab as a person would: from the tab bar, or (a narrow screen) from its "More tabs" menu."""
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.is_visible():
        tab.click()
        return
    page.get_by_label("More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).click()


def choose(page: Page, tab: str, providers: list[str]) -> None:
    """Tick exactly these providers (labels start with the provider's name), until they stay so for a second.

    The page's load answer sets the provider lists; where it must correct the ticks (a page whose visitors
    cannot use every provider), arriving after these clicks it puts its own back, so they are made again.
    """
    labels = page.locator(f"#{tab}-providers label")
    deadline, steady_since = time.monotonic() + 20, None
    while True:
        clicked = False
        for label in labels.all():
            wanted = any(label.inner_text().startswith(name) for name in providers)
            if label.locator("input").is_checked() != wanted:
                label.click()
                clicked = True
        now = time.monotonic()
        steady_since = None if clicked else steady_since or now
        if steady_since is not None and now - steady_since >= 1.0:
            return
        assert now < deadline, f"the {tab} tab's providers did not stay ticked as {providers}"
        page.wait_for_timeout(200)


def loaded(image: Locator) -> None:
    expect(image).to_be_visible(timeout=WAIT_MS)
    image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


def run_and_wait(page: Page, tab: str, panels: list[str]) -> None:
    """Click Generate and wait until every panel says done and the summary is in."""
    page.locator(f"#{tab}-generate").click()
    for panel in panels:
        expect(page.locator(f"#{tab}-{panel}-status")).to_contain_text("done in", timeout=WAIT_MS)
    expect(page.locator(f"#{tab}-summary")).to_contain_text("Total cost", timeout=WAIT_MS)


def show_panels(page: Page, tab: str) -> None:
    """Switch the tab's results from the grid to the detailed panels."""
    page.locator(f"#{tab}-grid [data-view=panels]").click()
    expect(page.locator(f"#{tab}-panels")).to_be_visible()


def test_generate_then_edit_with_before_after_then_chain_a_second_edit(web_page: Page, ui_app: RunningApp):
    open_page(web_page, ui_app)
    web_page.locator("#text-prompt textarea").fill("a red fox in a snowy birch forest")
    choose(web_page, "text", ["KIE AI", "RunAPI.ai", "Black Forest Labs"])
    shown = ["kie-pro", "runapi-pro", "bfl-pro"]
    run_and_wait(web_page, "text", shown)
    show_panels(web_page, "text")
    for panel in shown:
        loaded(web_page.locator(f"#text-{panel}-image img"))
        expect(web_page.locator(f"#text-{panel}-image img")).to_have_attribute("src", re.compile(r"\.jpg$"))
    expect(web_page.locator("#text-fluxapi-pro")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    web_page.screenshot(path=ARTIFACTS / "screenshot-text.png", full_page=True)

    web_page.get_by_role("tab", name="Edit").click()
    web_page.locator("#edit-image input[type=file]").set_input_files(EXAMPLE)
    web_page.locator("#edit-prompt textarea").fill("make it a snowy winter evening")
    choose(web_page, "edit", ["KIE AI", "RunAPI.ai", "Runflow"])
    edited = ["kie-pro", "runapi-pro", "runflow-pro"]
    run_and_wait(web_page, "edit", edited)
    show_panels(web_page, "edit")
    for panel in edited:
        before_after = web_page.locator(f"#edit-{panel}-slider img")
        expect(before_after).to_have_count(2, timeout=WAIT_MS)
        loaded(before_after.nth(0))
        loaded(before_after.nth(1))
    web_page.screenshot(path=ARTIFACTS / "screenshot-edit.png", full_page=True)

    web_page.locator("#edit-runapi-pro-use").click()
    expect(web_page.locator("#edit-image img")).to_have_attribute("src", re.compile(r"runapi-flux-kontext-pro"))
    expect(web_page.locator("#edit-image-note")).to_contain_text("is now the input")
    web_page.locator("#edit-prompt textarea").fill("add a red hot air balloon")
    web_page.locator("#edit-generate").click()
    expect(web_page.locator("#edit-summary")).not_to_contain_text("Total cost", timeout=WAIT_MS)
    expect(web_page.locator("#edit-summary")).to_contain_text("Total cost", timeout=WAIT_MS)
    for panel in edited:
        expect(web_page.locator(f"#edit-{panel}-status")).to_contain_text("done in")
        first = web_page.locator(f"#edit-{panel}-slider img").nth(0)
        expect(first).to_have_attribute("src", re.compile(r"runapi-flux-kontext-pro"))

    web_page.get_by_role("tab", name="History").click()
    runs = web_page.locator("#history-runs")

    def cell(text: str) -> Locator:  # the table also keeps a hidden copy of its rows, for sizing
        return runs.get_by_text(text).filter(visible=True).first

    expect(cell("add a red hot air balloon")).to_be_visible(timeout=WAIT_MS)  # the newest run
    cell("a red fox in a snowy birch forest").click()
    expect(web_page.locator("#history-run")).to_contain_text("a red fox in a snowy birch forest", timeout=WAIT_MS)
    show_panels(web_page, "history")
    for panel in shown:
        expect(web_page.locator(f"#history-{panel}-status")).to_contain_text("done in")
        loaded(web_page.locator(f"#history-{panel}-image img"))
    expect(web_page.locator("#history-fluxapi-pro")).to_be_hidden()
    web_page.screenshot(path=ARTIFACTS / "screenshot-history.png", full_page=True)


def test_stop_leaves_the_running_panel_stopped_with_its_task_id(web_page: Page, ui_app: RunningApp):
    open_page(web_page, ui_app)
    web_page.locator("#text-prompt textarea").fill("a fox sandbox:never")
    choose(web_page, "text", ["KIE AI"])
    web_page.locator("#text-generate").click()
    expect(web_page.locator("#text-kie-pro-status")).to_contain_text("running", timeout=WAIT_MS)
    web_page.locator("#text-stop").click()
    expect(web_page.locator("#text-kie-pro-status")).to_contain_text(re.compile(r"stopped after .* \(task \w+"))
    expect(web_page.locator("#text-kie-pro-info")).to_contain_text("Resume waits for it again")
    expect(web_page.locator("#text-resume")).to_be_visible()
    expect(web_page.locator("#text-grid .kx-tile[data-phase=stopped] [data-action=resume]")).to_have_count(1)
    # last, as it sets off Gradio's own handler too (tests/security/test_10_closed_tab.py: a running page asks)
    assert not asks_before_leaving(web_page), "with nothing running, leaving asks nothing"


def asks_before_leaving(page: Page) -> bool:
    """Whether the page's beforeunload handlers would make the browser ask (as on closing or reloading).

    Gradio's own handler closes the page's streams too: call it only once nothing should stream any more.
    """
    script = "() => { const e = new Event('beforeunload', {cancelable: true}); dispatchEvent(e); "
    script += "return e.defaultPrevented; }"
    return bool(page.evaluate(script))


def open_keys(web_page: Page, app: RunningApp) -> None:
    open_page(web_page, app)
    web_page.get_by_text("Keys: use your own API keys").click()


def test_keys_are_kept_in_this_browser_and_can_be_forgotten(web_page: Page, ui_app: RunningApp):
    open_keys(web_page, ui_app)
    expect(web_page.locator("#keys a[href='https://replicate.com/account/api-tokens']")).to_have_count(1)
    web_page.locator("#key-replicate input").fill("r8_short")
    web_page.locator("#key-kie input").fill("k")
    web_page.get_by_role("button", name="Save keys in this browser").click()
    expect(web_page.locator("#keys-status")).to_contain_text("does not look like a Replicate key: Replicate tokens")
    expect(web_page.locator("#keys-status")).to_contain_text("That KIE AI key is 1 character long")
    expect(web_page.locator("#key-replicate-mark")).to_contain_text("not saved")
    web_page.locator("#key-replicate input").fill("")
    web_page.locator("#key-kie input").fill("browser-key-91c2")
    web_page.get_by_role("button", name="Save keys in this browser").click()
    expect(web_page.locator("#keys-status")).to_contain_text("Keys saved in this browser for: KIE AI")
    expect(web_page.locator("#key-kie input")).to_have_value("")
    expect(web_page.locator("#key-kie-mark")).to_contain_text("saved")
    expect(web_page.locator("#key-bfl-mark")).to_contain_text("not saved")
    open_keys(web_page, ui_app)  # a reload: the key comes back from the browser's storage, not from the server
    expect(web_page.locator("#keys-status")).to_contain_text("Keys saved in this browser for: KIE AI", timeout=WAIT_MS)
    assert "browser-key-91c2" not in web_page.content()
    web_page.get_by_role("button", name="Forget my keys").click()
    expect(web_page.locator("#keys-status")).to_contain_text("No keys saved")
    open_keys(web_page, ui_app)
    expect(web_page.locator("#keys-status")).to_contain_text("No keys saved", timeout=WAIT_MS)
