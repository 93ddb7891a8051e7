"""Acceptance 2: every provider key, every signing secret and every visitor key set to a unique canary; each
provider answers 401 repeating the key it was given; afterwards no canary is anywhere: stdout, stderr, logs,
the database, output files, served HTML/JS, /config, the API info, the page, its storage, curl snippets."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from playground.cli import main
from playground.providers import REGISTRY
from playground.sandbox.server import base_urls
from playground.settings import Settings
from playground.ui.layout import STORAGE_KEY
from tests.security.conftest import ROOT, updates
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, form

pytestmark = pytest.mark.browser
EXAMPLE = ROOT / "playground" / "ui" / "assets" / "example-input.png"
VISITOR = {spec.key_env: f"canary{secrets.token_hex(10)}" for spec in REGISTRY.values()}
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def every_create_answers_401(sandbox) -> None:
    for name in REGISTRY:
        sandbox.state.inject(name, "create", "401")  # "Invalid API key: <the key it was given>"


def run_as_a_visitor_with_their_own_keys(page: Page, url: str, seen: list[str]) -> str:
    """Enter a canary key for every provider under Keys, then edit an uploaded image on every provider."""
    page.on("response", lambda r: seen.append(_body(r)))
    page.goto(url)
    page.get_by_text("Keys: use your own API keys").click()
    for name, spec in REGISTRY.items():
        page.locator(f"#key-{name} input").fill(VISITOR[spec.key_env])
    page.get_by_role("button", name="Save keys in this browser").click()
    expect(page.locator("#keys-status")).to_contain_text("Keys saved in this browser for:", timeout=WAIT_MS)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-image input[type=file]").set_input_files(EXAMPLE)
    page.locator("#edit-prompt textarea").fill("make it snow")
    for label in page.locator("#edit-providers label").all():
        if not label.locator("input").is_checked():
            label.click()
    page.locator("#edit-generate").click()
    expect(page.locator("#edit-summary")).to_contain_text("Run", timeout=WAIT_MS)
    for name in REGISTRY:
        expect(page.locator(f"#edit-{name}-pro-status")).to_contain_text("rejected the API key", timeout=WAIT_MS)
    return page.content() + json.dumps(page.evaluate("() => ({...localStorage})"))


def _body(response) -> str:
    try:
        if "event-stream" in response.headers.get("content-type", ""):
            return ""  # streamed updates are read through gradio_client below
        return response.text()
    except Exception:  # a body the browser no longer holds (redirects, aborted streams)
        return ""


def run_the_cli(real_app, tmp_path: Path, capsys) -> tuple[str, str]:
    """The CLI with the same canary keys (from its environment): every provider, one edit; then the run as history
    shows it. In this process, so its logging goes where the test can read it too."""
    every_create_answers_401(real_app.sandbox)
    env = real_app.keys | base_urls(real_app.sandbox.url)
    env |= {"PLAYGROUND_DATA_DIR": str(tmp_path / "data"), "PLAYGROUND_OUT_DIR": str(tmp_path / "out")}
    image = f"{real_app.sandbox.url}/files/{real_app.sandbox.state.add_file(EXAMPLE.read_bytes(), 'image/png')}"
    providers = [arg for name in REGISTRY for arg in ("--provider", name)]
    capsys.readouterr()
    off_the_browsers_loop(["generate", *providers, "--prompt", "x", "--image", image, "--json"], env)
    out, err = capsys.readouterr()
    run_id = json.loads(out.splitlines()[0])["run_id"]
    off_the_browsers_loop(["history", "show", run_id, "--json"], env)
    shown, err2 = capsys.readouterr()
    return out + shown, err + err2


def off_the_browsers_loop(argv: list[str], env: dict[str, str]) -> int:
    """The CLI's main on a thread of its own: sync Playwright keeps an event loop running on this one."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(main, argv, settings=Settings.from_env(env)).result()


def every_file(*folders: Path) -> str:
    """The bytes of every file under ``folders`` (databases and their WAL, images, hosted inputs), as text."""
    return "".join(p.read_bytes().decode("latin-1") for f in folders if f.exists() for p in f.rglob("*") if p.is_file())


def test_no_canary_is_anywhere_after_providers_echo_every_key(real_app, chromium, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    # The server's keys, every provider through the page's API: once echoed back by a 401, once succeeding
    # (so that the curl snippets and what was sent are shown too).
    image = f"{real_app.sandbox.url}/files/{real_app.sandbox.state.add_file(EXAMPLE.read_bytes(), 'image/png')}"
    edit = form("make it snow", list(REGISTRY), image=None, image_url=image)
    every_create_answers_401(real_app.sandbox)
    echoed = json.dumps(updates(real_app.url, edit, "/edit")[1])
    assert echoed.count("Invalid API key: [redacted]") >= len(REGISTRY), "every provider must have echoed a key"
    succeeded = json.dumps(updates(real_app.url, edit, "/edit")[1])
    assert succeeded.count("curl -X POST") >= len(REGISTRY) and "webhook_secret" in succeeded
    streamed = echoed + succeeded

    # A visitor's own keys, in the browser: stored, sent, echoed back.
    every_create_answers_401(real_app.sandbox)
    seen: list[str] = []
    context = chromium.new_context(viewport={"width": 1300, "height": 1000})
    shown = run_as_a_visitor_with_their_own_keys(context.new_page(), real_app.url, seen)
    context.close()

    cli_out, cli_err = run_the_cli(real_app, tmp_path, capsys)
    assert "Invalid API key: [redacted]" in cli_out

    served = [httpx.get(f"{real_app.url}{path}", timeout=30).text for path in ("", "config", "gradio_api/info")]
    places = {
        "the page's streamed updates and curl snippets": streamed,
        "the page in the browser and its storage": shown,
        "what the browser was sent": "".join(seen),
        "served HTML, /config, API info": "".join(served),
        "the app's stdout, stderr and logs": real_app.log.read_text(),
        "the app's database, outputs and hosted inputs": every_file(real_app.data_dir, real_app.out_dir),
        "the CLI's stdout and history": cli_out,
        "the CLI's stderr": cli_err,
        "this process's logs (the CLI's)": caplog.text,
        "the CLI's database and outputs": every_file(tmp_path),
    }
    canaries = {**real_app.keys, **VISITOR}
    found = {(place, name) for place, text in places.items() for name, value in canaries.items() if value in text}
    assert not found, sorted(found)
    assert STORAGE_KEY in shown, "the visitor's stored keys were looked at"
