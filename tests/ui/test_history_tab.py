"""The History tab's endpoints through gradio_client, on the sandbox: list, search, filter, open, re-run, resume."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client, handle_file

from playground.service import GenerationService
from playground.settings import Settings
from playground.ui.history_handlers import HISTORY_HEAD, NOT_FOUND, HistoryHandlers
from playground.ui.history_tab import HISTORY_OFF
from playground.ui.runtime import build_page
from tests.ui.conftest import OWNER, Outputs, RunningApp, form
from tests.ui.test_app_client import EXAMPLE, PRO, client, last, statuses

MAX = "flux-kontext-max"
KEYS = {"v": 1, "keys": {}}


def tag() -> str:
    """A word no other test's prompt contains, so each test searches only its own runs."""
    return f"hist{uuid.uuid4().hex[:8]}"


_CLIENTS: dict[str, Client] = {}
_OUTPUTS: dict[tuple[str, str], Outputs] = {}


def cached_client(app: RunningApp) -> Client:
    """One client per app (making one costs a round of API discovery)."""
    if app.url not in _CLIENTS:
        _CLIENTS[app.url] = client(app)
    return _CLIENTS[app.url]


def outputs_of(app: RunningApp, api_name: str) -> Outputs:
    if (app.url, api_name) not in _OUTPUTS:
        _OUTPUTS[(app.url, api_name)] = Outputs(cached_client(app), api_name)
    return _OUTPUTS[(app.url, api_name)]


def stream(app: RunningApp, args: list[Any], api_name: str = "/generate") -> tuple[Outputs, list[tuple[Any, ...]]]:
    """Every update of one run, in order."""
    updates = [tuple(update) for update in cached_client(app).submit(*args, api_name=api_name)]
    return outputs_of(app, api_name), updates


def listed(app: RunningApp, query: str, *, owner: str = OWNER, **filters: str) -> list[dict[str, str]]:
    """The rows the History list shows for a search (and filters), newest first: id, prompt, meta, outcome."""
    args = [query, filters.get("provider", ""), filters.get("model", ""), filters.get("outcome", ""), owner]
    html, _note = cached_client(app).predict(*args, api_name="/history")
    rows = []
    for row in html.split('<button type="button" class="kx-run"')[1:]:
        found = {key: re.search(pattern, row) for key, pattern in ROW_PARTS.items()}
        rows.append({key: unescape(match.group(1)) for key, match in found.items() if match is not None})
    return rows


ROW_PARTS = {
    "run_id": r'data-run="([^"]+)"',
    "prompt": r'kx-run-prompt">(.*?)</span>',
    "meta": r'kx-run-meta">(.*?)</span>',
    "outcome": r'kx-run-outcome">(.*?)</span>',
    "thumbs": r'kx-thumbs">(.*?)</span><span class="kx-run-text',
}


def ids(rows: list[dict[str, str]]) -> list[str]:
    return [row["run_id"] for row in rows]


def opened(app: RunningApp, run_id: str, *, owner: str = OWNER) -> tuple[Outputs, tuple[Any, ...]]:
    values = cached_client(app).predict(run_id, owner, api_name="/history_open")
    return outputs_of(app, "/history_open"), tuple(values)


def is_visible(outputs: Outputs, values: tuple[Any, ...], label: str) -> bool:
    update = values[outputs.labels.index(label)]
    return isinstance(update, dict) and update.get("visible") is True


def buttons(app: RunningApp, run_id: str) -> dict[str, bool]:
    """Whether Re-run and Resume waiting show for a run (buttons are not part of the API's outputs)."""
    frame = asyncio.run(HistoryHandlers(app.page.handlers).open_run(run_id, OWNER))
    head = dict(zip(HISTORY_HEAD, frame, strict=False))
    return {name: head[name]["visible"] for name in ("rerun", "resume")}


def test_runs_are_listed_newest_first_and_search_and_each_filter_narrow_the_list(ui_app):
    word = tag()
    stream(ui_app, form(f"a {word} fox", ["kie", "bfl"]))
    stream(ui_app, form(f"an {word} owl sandbox:fail", ["runapi"], models=(MAX,)))
    owl, fox = ids(listed(ui_app, word))
    rows = listed(ui_app, word)
    assert [row["prompt"] for row in rows] == [f"an {word} owl sandbox:fail", f"a {word} fox"], "newest first"
    assert rows[1]["meta"].startswith("Text to image · ") and rows[1]["meta"].endswith(
        "Black Forest Labs, KIE AI · pro"
    )
    assert rows[1]["outcome"] == "<strong>all done</strong><br>2 done · $0.04", rows[1]
    assert rows[0]["outcome"] == "<strong>failed</strong><br>1 failed"
    assert rows[1]["thumbs"].count("<img ") == 2 and rows[0]["thumbs"].count("<img ") == 0, "its results, small"
    assert ids(listed(ui_app, f"{word.upper()} FOX")) == [fox], "search ignores case"
    assert ids(listed(ui_app, word, provider="kie")) == [fox]
    assert ids(listed(ui_app, word, model=MAX)) == [owl]
    assert ids(listed(ui_app, word, outcome="failed")) == [owl]
    assert ids(listed(ui_app, word, outcome="succeeded")) == [fox]
    assert listed(ui_app, word, outcome="running") == []


def test_opening_a_run_shows_its_panels_with_the_original_files_served_by_the_app(ui_app):
    word = tag()
    stream(ui_app, form(f"a {word} fox", ["kie", "bfl"], seed="42"))
    (run_id,) = ids(listed(ui_app, word))
    outputs, values = opened(ui_app, run_id)
    record = asyncio.run(ui_app.service.history.get_run(run_id))
    assert outputs.get(values, "Run id") == run_id and f"> a {word} fox" in outputs.get(values, "history run")
    assert "seed 42" in outputs.get(values, "history run") and ": 2 done" in outputs.get(values, "history summary")
    for job in record.jobs:
        panel = f"{job.provider} {job.model}"
        assert outputs.get(values, f"status {panel}").startswith("✔ done in")
        image = outputs.get(values, f"image {panel}")
        assert Path(image["path"]).is_file() and Path(job.result_path).is_file()
        original = Path(job.result_path).read_bytes()
        assert hashlib.sha256(httpx.get(image["url"]).content).digest() == hashlib.sha256(original).digest()
        assert not is_visible(outputs, values, f"before / after {panel}"), "a generate run has no 'before'"
        assert outputs.get(values, f"sent {panel}")["prompt"] == f"a {word} fox"
        assert f"${job.provider.upper()}_API_KEY" in outputs.get(values, f"curl {panel}")
        changes = outputs.get(values, f"changes {panel}")
        assert [s in changes for s in ("**queued**", "**running**", "**succeeded**")] == [True] * 3, changes
    assert "Latency" in outputs.get(values, f"info bfl {PRO}") and "Cost** $0.04" in outputs.get(
        values, f"info bfl {PRO}"
    )
    assert buttons(ui_app, run_id) == {"rerun": True, "resume": False}


def test_an_edit_run_opens_with_its_kept_input_as_before_and_its_result_as_after(ui_app):
    word = tag()
    stream(ui_app, form(f"make it {word}", ["kie"], image=handle_file(str(EXAMPLE))), "/edit")
    (run_id,) = ids(listed(ui_app, word))
    outputs, values = opened(ui_app, run_id)
    before, after = outputs.get(values, f"before / after kie {PRO}")
    assert httpx.get(before["url"]).content == EXAMPLE.read_bytes()
    assert after["path"].endswith("kie-flux-kontext-pro.jpg")
    assert not is_visible(outputs, values, f"image kie {PRO}")


def test_rerun_sends_the_stored_request_to_the_same_targets_as_a_new_run(ui_app):
    word = tag()
    stream(ui_app, form(f"a {word} heron", ["kie", "bfl"], seed="42"))
    (first,) = ids(listed(ui_app, word))
    creates = ui_app.sandbox.state.count(stage="create")
    outputs, updates = stream(ui_app, [first, KEYS, OWNER], "/history_rerun")
    for provider in ("kie", "bfl"):
        assert statuses(outputs, updates, provider)[-1].startswith("✔ done"), provider
    assert last(outputs, updates, f"sent bfl {PRO}")["seed"] == 42
    new = last(outputs, updates, "Run id")
    assert new != first and ids(listed(ui_app, word)) == [new, first]
    assert ui_app.sandbox.state.count(stage="create") - creates == 2


def test_a_job_stopped_at_the_deadline_is_resumed_from_history_without_a_second_create(ui_app):
    word = tag()
    service: GenerationService = ui_app.service
    ui_app.sandbox.state.job_seconds = 2.5
    creates = ui_app.sandbox.state.count("kie", "create")
    settings = service.settings
    service.settings = settings.model_copy(update={"job_timeout_s": 0.8})
    try:
        outputs, updates = stream(ui_app, form(f"a {word} lynx", ["kie"]))
    finally:
        service.settings = settings
    assert "did not finish" in statuses(outputs, updates, "kie")[-1]
    (run_id,) = ids(listed(ui_app, word, outcome="failed"))
    assert buttons(ui_app, run_id) == {"rerun": True, "resume": True}
    history, values = opened(ui_app, run_id)
    assert "**Resume** waits for it again" in history.get(values, f"info kie {PRO}")
    grid = history.get(values, "history grid")
    assert re.search(r'data-phase="timed out".*data-action="resume"', grid), "the timed-out tile has its Resume button"

    outputs, updates = stream(ui_app, [run_id, KEYS, OWNER], "/history_resume")
    assert statuses(outputs, updates, "kie")[-1].startswith("✔ done"), statuses(outputs, updates, "kie")
    assert Path(last(outputs, updates, f"image kie {PRO}")["path"]).is_file()
    assert ui_app.sandbox.state.count("kie", "create") - creates == 1, "resuming must not submit again"
    assert ids(listed(ui_app, word, outcome="succeeded")) == [run_id]
    assert buttons(ui_app, run_id) == {"rerun": True, "resume": False}
    curls = [str(outputs.get(u, f"curl kie {PRO}")) for u in updates]
    assert not any("(resumed)" in curl for curl in curls), "the panel keeps showing the request first sent"


def test_on_a_shared_page_each_browser_lists_and_opens_only_its_own_runs(ui_app):
    word, mine, theirs = tag(), f"mine-{uuid.uuid4().hex}", f"theirs-{uuid.uuid4().hex}"
    stream(ui_app, form(f"my {word}", ["kie"], owner=mine))
    stream(ui_app, form(f"their {word}", ["kie"], owner=theirs))
    options = ui_app.page.handlers.options
    options.shared = True
    try:
        assert [row["prompt"] for row in listed(ui_app, word, owner=mine)] == [f"my {word}"]
        (their_run,) = ids(listed(ui_app, word, owner=theirs))
        assert listed(ui_app, word, owner="") == [], "no owner id: nothing is listed"
        outputs, values = opened(ui_app, their_run, owner=mine)
        assert outputs.get(values, "history message") == NOT_FOUND
        assert outputs.get(values, f"status kie {PRO}") is None
        creates = ui_app.sandbox.state.count(stage="create")
        outputs, updates = stream(ui_app, [their_run, KEYS, mine], "/history_rerun")
        assert last(outputs, updates, "history message") == NOT_FOUND
        assert ui_app.sandbox.state.count(stage="create") == creates
    finally:
        options.shared = False
    assert len(listed(ui_app, word, owner=mine)) == 2, "a local page lists every run"


def test_a_page_without_history_says_history_is_off(tmp_path):
    service = GenerationService(Settings(out_dir=tmp_path / "out", data_dir=tmp_path / "data", sandbox=True))
    page = build_page(service, share=False, environ={"PLAYGROUND_BROWSER_SECRET": "s"})
    config = str(page.demo.get_config_file())
    assert HISTORY_OFF in config and "history_open" not in config
