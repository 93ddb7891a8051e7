"""The comparison view in Debian's chromium, at 1440x900 and 390x844: results in view and aligned, comparable
shapes, one truth about each job's state, one sentence per bad file, plain words, a phone that works."""

from __future__ import annotations

import json
import logging
import re
import time
import zipfile
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.badfiles import write_bad_files
from tests.ui.conftest import ARTIFACTS, ROOT, RunningApp
from tests.ui.test_browser import (  # noqa: F401 (chromium: a fixture)
    EXAMPLE,
    WAIT_MS,
    choose,
    chromium,
    open_page,
    open_tab,
)

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
FORBIDDEN = ("providers.md", "seed0", "UNCERTAIN", str(ROOT), "playground/")


@pytest.fixture
def desktop(chromium: Browser) -> Iterator[Page]:  # noqa: F811
    context = chromium.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def tiles(page: Page, tab: str) -> list[dict]:
    """Every tile of a tab's grid: its phase, text and rendered box."""
    return page.eval_on_selector_all(
        f"#{tab}-grid .kx-tile",
        """tiles => tiles.map(t => { const r = t.getBoundingClientRect();
            return {phase: t.dataset.phase, key: t.dataset.key, text: t.innerText,
                    top: r.top, bottom: r.bottom, height: r.height}; })""",
    )


def first_tile_in_view(page: Page, tab: str) -> None:
    """Wait until the grid's first tile lies wholly inside the viewport (the page brings it there itself)."""
    page.wait_for_function(
        """tab => { const t = document.querySelector(`#${tab}-grid .kx-tile`); if (!t) return false;
            const r = t.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }""",
        arg=tab,
        timeout=WAIT_MS,
    )


def test_sixteen_edits_land_in_view_aligned_in_the_inputs_shape_with_what_each_changed(
    desktop: Page, ui_app: RunningApp
):
    page = desktop
    open_page(page, ui_app)
    page.get_by_role("tab", name="Edit").click()
    # 512x384 (4:3), by URL, so the URL-only providers take it too: 8 providers x 2 models = 16 jobs
    url = f"{ui_app.sandbox.url}/files/{ui_app.sandbox.state.add_file(EXAMPLE.read_bytes(), 'image/png')}"
    page.locator("#edit-image-url").get_by_role("textbox").fill(url)
    page.locator("#edit-prompt textarea").fill("make it a snowy winter evening")
    page.locator("#edit-models label").filter(has_text="max").click()
    page.locator("#edit-generate").click()

    expect(page.locator("#edit-grid .kx-tile")).to_have_count(16, timeout=WAIT_MS)
    first_tile_in_view(page, "edit")  # without the visitor scrolling
    expect(page.locator("#edit-grid .kx-tile[data-phase=done]")).to_have_count(16, timeout=WAIT_MS)
    expect(page.locator("#edit-summary")).to_contain_text("16 done", timeout=WAIT_MS)
    shown = tiles(page, "edit")
    rows: dict[int, set[float]] = {}
    for tile in shown:
        rows.setdefault(round(tile["top"]), set()).add(round(tile["height"], 1))
    assert len(rows) > 1 and all(len(heights) == 1 for heights in rows.values()), rows

    for tile in shown:  # 'match the input': every provider was sent the ratio it takes nearest 4:3
        width, height = map(int, re.search(r"(\d+)×(\d+)", tile["text"]).groups())
        assert abs(width / height - 4 / 3) / (4 / 3) < 0.05, tile
        assert re.search(r"\d+ % of the picture changed", tile["text"]), f"each edit says how much it changed: {tile}"
    page.locator("#edit-grid [data-view=panels]").click()
    assert unplain(page_words(page)) == [], "no UI text names our notes, seeds or files"
    page.locator("#edit-grid [data-view=grid]").click()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "screenshot-grid-edit.png")
    expect(page.locator("#edit-bundle")).to_contain_text("Download all (16 images, zip)")
    with page.expect_download() as download:
        page.locator("#edit-bundle").click()
    with zipfile.ZipFile(download.value.path()) as bundle:  # every original file, and the run as JSON
        names = bundle.namelist()
        run = json.loads(bundle.read("run.json"))
    assert len(names) == 17 and len(run["jobs"]) == 16 and run["kind"] == "edit", names

    boxes = page.locator("#edit-grid .kx-pick-box")
    boxes.nth(0).check()
    boxes.nth(5).check()
    page.locator("#edit-grid [data-action=compare]").click()
    panes = page.locator("#kx-compare .kx-stage")
    expect(panes).to_have_count(3)  # the input, then the two results
    first = panes.nth(1).bounding_box()
    page.mouse.move(first["x"] + first["width"] * 0.3, first["y"] + first["height"] * 0.4)
    page.mouse.wheel(0, -400)
    page.wait_for_function("() => Number(document.getElementById('kx-compare').dataset.scale) > 1.5")
    centres = page.eval_on_selector_all(
        "#kx-compare .kx-stage img",
        """imgs => imgs.map(i => { const s = i.parentElement, px = v => parseFloat(i.style[v]);
            const w = px('width'), h = px('height');
            return [(s.clientWidth / 2 - px('left')) / w, (s.clientHeight / 2 - px('top')) / h]; })""",
    )
    assert all(abs(c[0] - centres[0][0]) < 1e-3 and abs(c[1] - centres[0][1]) < 1e-3 for c in centres), centres
    assert centres[0] != [0.5, 0.5], "the zoom went where the pointer was, in every picture at once"
    page.screenshot(path=ARTIFACTS / "screenshot-compare.png")
    page.keyboard.press("Escape")
    expect(page.locator("#kx-compare")).to_have_count(0)


def state_words(page: Page) -> dict[str, str]:
    """What the four places say about the run: live panel, live summary, History row, History panel."""
    row = page.locator("#history-runs .kx-run").first
    return {
        "live panel": page.locator("#text-kie-pro-status").text_content() or "",
        "live summary": page.locator("#text-summary").text_content() or "",
        "history row": f"{row.get_attribute('data-outcome')}: {row.text_content()}",
        "history panel": page.locator("#history-kie-pro-status").text_content() or "",
    }


def test_stop_then_history_then_resume_name_the_same_state_everywhere(desktop: Page, ui_app: RunningApp):
    page = desktop
    prompt = "a lynx on a frozen lake, stopped then resumed"
    ui_app.sandbox.state.job_seconds = 60.0  # long enough for Stop to land mid-run, however slow the machine
    open_page(page, ui_app)
    page.locator("#text-prompt textarea").fill(prompt)
    choose(page, "text", ["KIE AI", "Black Forest Labs"])
    page.locator("#text-generate").click()
    expect(page.locator("#text-grid .kx-tile[data-phase=running]")).to_have_count(2, timeout=WAIT_MS)
    page.locator("#text-stop").click()
    expect(page.locator("#text-summary")).to_contain_text("2 stopped", timeout=WAIT_MS)

    page.get_by_role("tab", name="History").click()
    row = page.locator("#history-runs .kx-run").first
    expect(row).to_contain_text("a lynx on a frozen lake", timeout=WAIT_MS)
    row.click()
    expect(page.locator("#history-run")).to_contain_text("a lynx on a frozen lake", timeout=WAIT_MS)
    stopped = state_words(page)
    assert "■ stopped after" in stopped["live panel"] and "(task " in stopped["live panel"], stopped
    assert ": 2 stopped" in stopped["live summary"] and "fail" not in stopped["live summary"], stopped
    assert stopped["history row"].startswith("stopped: ") and "2 stopped" in stopped["history row"], stopped
    assert "■ stopped after" in stopped["history panel"], stopped

    created = []
    for job in ui_app.sandbox.state.jobs.values():  # meanwhile the provider finished them
        if job.prompt == prompt:
            job.duration_s = 0.0
            created.append(job.created_at)
    resumed_at = time.time()  # the sandbox clock
    page.locator("#history-resume").click()
    expect(page.locator("#history-summary")).to_contain_text("2 done", timeout=WAIT_MS)
    expect(row).to_have_attribute("data-outcome", "all done", timeout=WAIT_MS)
    done = state_words(page)
    assert re.search(r"✔ done in ([\d.]+–)?[\d.]+ s \(resumed\)", done["history panel"]), done
    assert done["history row"].startswith("all done: ") and "2 done" in done["history row"], done
    latency = float(re.search(r"done in (?:[\d.]+–)?([\d.]+) s", done["history panel"]).group(1))
    # The create was sent before the sandbox made the job; the panel shows tenths (rounded).
    assert latency + 0.05 >= resumed_at - min(created), "a resumed job's latency counts from its first submit"
    page.get_by_role("tab", name="Text to image").click()
    assert "stopped" in state_words(page)["live panel"], "the live tab still tells what happened there"


def test_each_bad_file_gets_one_sentence_in_the_page_and_no_traceback(desktop: Page, ui_app, tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    page = desktop
    open_page(page, ui_app)
    page.get_by_role("tab", name="Edit").click()
    note = page.locator("#edit-image-note")
    expected = {
        "notes.png": "notes.png is a text file, not an image (its name ends in .png, but its contents are text)",
        "empty.png": "empty.png is empty (0 bytes): choose a JPEG, PNG or WebP image.",
        "cut.png": "cut.png is a PNG file that is cut short or damaged",
        "huge.png": "huge.png is 8000×8000 pixels (64 megapixels); the playground takes up to 50 megapixels",
    }
    for name, path in write_bad_files(tmp_path).items():
        page.locator("#edit-image input[type=file]").set_input_files(path)
        expect(note).to_contain_text(expected[name], timeout=WAIT_MS)
        sentence = (note.text_content() or "").strip()
        assert sentence.count(". ") == 0 and sentence.endswith("."), f"one sentence: {sentence}"
        expect(page.locator("#edit-image img")).to_have_count(0)  # the box is cleared: nothing broken stays
    page.locator("#edit-prompt textarea").fill("make it snow")
    page.locator("#edit-generate").click()
    expect(page.locator("#edit-message")).to_contain_text("Add an input image", timeout=WAIT_MS)
    body = page.locator("body").inner_text()
    assert "preprocess" not in body and "Error" not in body and "/tmp/" not in body
    out, err = capfd.readouterr()
    records = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert "Traceback" not in out + err and not records, (err[-2000:], records)


def page_words(page: Page) -> str:
    """All the text of the page, hidden parts included, and the words of its attributes people may see."""
    return page.evaluate(
        """() => { const names = ['title', 'placeholder', 'aria-label', 'alt'];
            const marked = [...document.querySelectorAll('[title],[placeholder],[aria-label],[alt]')];
            const said = marked.map(e => names.map(a => e.getAttribute(a) || '').join(' '));
            return document.body.textContent + said.join(' ');
        }"""
    )


def unplain(words: str) -> list[str]:
    """The references to our own code or notes found in a page's words (none may be)."""
    return [word for word in FORBIDDEN if word in words]


def overflowing(page: Page) -> list[str]:
    """Elements reaching past the right edge of the screen that no scrolling box of their own holds."""
    return page.evaluate(
        """() => { const out = [];
            const clipped = e => { for (let p = e.parentElement; p; p = p.parentElement) {
                const o = getComputedStyle(p).overflowX; if (o !== 'visible') return true; } return false; };
            for (const e of document.querySelectorAll('body *')) {
                const r = e.getBoundingClientRect();
                if (r.width && r.right > innerWidth + 1 && !clipped(e)) out.push(`${e.tagName}.${e.className}`);
            }
            if (document.documentElement.scrollWidth > innerWidth + 1) out.push('the page scrolls sideways');
            return out; }"""
    )


def test_every_tab_speaks_plain_words_and_works_on_a_phone(chromium: Browser, ui_app: RunningApp):  # noqa: F811
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        open_page(page, ui_app)
        for tab, button in (("text", None), ("edit", "Edit")):
            if button:
                open_tab(page, button)
                page.locator("#edit-image input[type=file]").set_input_files(EXAMPLE)
                expect(page.locator("#edit-image-note")).to_contain_text("512×384", timeout=WAIT_MS)
            prompt = page.locator(f"#{tab}-prompt").bounding_box()
            generate = page.locator(f"#{tab}-generate").bounding_box()
            assert generate["y"] + generate["height"] - prompt["y"] < PHONE["height"], (tab, prompt, generate)
            if tab == "text":  # (the Edit tab's results are read by the 16-job test)
                page.locator("#text-prompt textarea").fill("a heron, in plain words")
                choose(page, tab, ["KIE AI", "Replicate"])
                page.locator("#text-generate").click()
                expect(page.locator("#text-summary")).to_contain_text("2 done", timeout=WAIT_MS)
                page.locator("#text-grid [data-view=panels]").click()
                assert overflowing(page) == [], tab
                page.locator("#text-grid [data-view=grid]").click()
            assert overflowing(page) == [], tab
            assert unplain(page_words(page)) == [], tab
        for other, shown in (("Providers", "#providers-refresh"), ("Arena", "#arena-start")):
            open_tab(page, other)  # past the phone's tab bar: through its "More tabs" menu
            expect(page.locator(shown)).to_be_visible(timeout=WAIT_MS)
            assert overflowing(page) == [], other
            assert unplain(page_words(page)) == [], other
        open_tab(page, "History")
        page.locator("#history-runs .kx-run").first.click()
        expect(page.locator("#history-summary")).to_contain_text("2 done", timeout=WAIT_MS)
        page.get_by_text("Keys: use your own API keys").click()
        assert overflowing(page) == [], "history"
        words = page_words(page)
        assert unplain(words) == []
        assert "Search prompts" in words and "get a key" in words, "the checks above read the page's words"
        page.screenshot(path=ARTIFACTS / "screenshot-phone-history.png", full_page=True)
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<div id=wide style=\"width:2000px\">x</div>')")
        assert overflowing(page), "the check above sees an element wider than the screen"
    finally:
        context.close()
