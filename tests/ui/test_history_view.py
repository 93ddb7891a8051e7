"""The History tab's text and panels from stored runs: pure functions, no browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from playground.history import JobRecord, RunSummary, StateChange
from playground.models import JobEvent, JobResult, WireRequest
from playground.providers import REGISTRY
from playground.settings import Settings
from playground.ui.history_view import (
    LIST_LIMIT,
    list_filters,
    list_note,
    new_owner,
    panel_of,
    settings_text,
    short_prompt,
    timeline,
    valid_owner,
    with_sent,
)
from playground.ui.runtime import allowed_paths

START = datetime(2025, 11, 23, 14, 0, 0, tzinfo=UTC)
POST = WireRequest(method="POST", url="https://api.example/kontext", body={"prompt": "a fox"})


def job(**fields: Any) -> JobRecord:
    values: dict[str, Any] = dict(run_id="r1", provider="bfl", model="flux-kontext-pro", state="succeeded")
    return JobRecord(**(values | {"created_at": START, "updated_at": START} | fields))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("x" * 24, True), ("", False), ("short", False), (None, False), (123, False), ("has spaces in it, sadly", False)],
)
def test_only_an_owner_id_we_could_have_made_is_taken(value, expected):
    assert (valid_owner(value) is not None) is expected


def test_a_new_owner_id_is_valid_and_different_each_time():
    first, second = new_owner(), new_owner()
    assert valid_owner(first) == first and first != second


def test_blank_filters_mean_any_and_an_unknown_outcome_is_ignored():
    assert list_filters("  fox ", "", None, "weird") == {
        "query": "fox",
        "provider": None,
        "model": None,
        "outcome": None,
    }
    assert list_filters("", "kie", "flux-kontext-max", "failed")["outcome"] == "failed"


def test_a_long_prompt_is_shortened_to_one_line():
    assert short_prompt("a red\n fox") == "a red fox"
    cut = short_prompt("word " * 40, limit=20)
    assert len(cut) <= 20 and cut.endswith("…")


def test_a_row_says_who_ran_and_how_it_went_in_plain_words_with_its_thumbnails(tmp_path):
    from playground.ui.history_list import run_html

    states = (("bfl", "flux-kontext-pro", "succeeded"), ("kie", "flux-kontext-max", "stopped"))
    run = RunSummary(
        run_id="abc", created_at=START, kind="edit", prompt="make it <b>snowy</b>", outcome="stopped", job_states=states
    )
    thumb = tmp_path / "bfl-flux-kontext-pro-160.jpg"
    row = run_html(run, REGISTRY, [thumb])
    assert 'data-run="abc"' in row and 'data-outcome="stopped"' in row and row.startswith("<button")
    assert "make it &lt;b&gt;snowy&lt;/b&gt;" in row, "the prompt is text, never markup"
    assert "Edit · 2025-11-23" in row and "Black Forest Labs, KIE AI · pro, max" in row
    assert "<strong>stopped</strong><br>1 done · 1 stopped" in row, "the counts the run summary uses"
    assert row.count("<img ") == 1 and "bfl-flux-kontext-pro-160.jpg" in row


def test_the_list_note_says_what_is_shown():
    assert "No runs yet" in list_note(0, filtered=False)
    assert "No run matches" in list_note(0, filtered=True)
    assert list_note(1, filtered=False).startswith("1 run.")
    assert "newest 100" in list_note(LIST_LIMIT, filtered=False)


def test_the_settings_line_names_what_was_asked():
    request = {"output_format": "png", "seed": 7, "aspect_ratio": "16:9", "enable_translation": False}
    text = settings_text(request | {"image": {"path": "inputs/x.png"}}, [("bfl", "flux-kontext-max")])
    assert text == "Settings: models max · png · aspect ratio 16:9 · seed 7 · translation off · input: uploaded file"
    assert "input: URL https://x/y.png" in settings_text({"image": {"url": "https://x/y.png"}}, [])


def test_a_stored_job_with_its_file_becomes_a_panel_with_the_result_facts(tmp_path: Path):
    path = tmp_path / "bfl-flux-kontext-pro.png"
    Image.new("RGB", (32, 16)).save(path)
    view = panel_of(job(result_path=str(path), latency_s=3.2, cost_usd=0.04, sent=POST), REGISTRY["bfl"])
    result = view.result
    assert result is not None and (result.mime_type, result.width, result.height) == ("image/png", 32, 16)
    assert result.size_bytes == path.stat().st_size and result.sent == POST and view.elapsed_s == 3.2
    assert "**Latency** 3.2 s" in view.info(sandbox=True)


def test_a_job_kept_with_its_whole_result_shows_its_interval_and_breakdown_in_history(tmp_path: Path):
    path = tmp_path / "bfl-flux-kontext-pro.png"
    Image.new("RGB", (32, 16)).save(path)
    kept = JobResult(
        path="/elsewhere/when/it/ran.png", image_url="http://x/y.png", mime_type="image/png", width=32, height=16,
        size_bytes=path.stat().st_size, latency_s=8.2, latency_low_s=7.9, breakdown={"generating": 7.5},
        cost_usd=None, cost_source=None,
        sent=POST,
    )  # fmt: skip
    view = panel_of(job(result_path=str(path), latency_s=8.2, sent=POST, result=kept), REGISTRY["bfl"])
    assert view.result is not None and view.result.path == str(path), "the file as it is now"
    assert view.status_line() == "✔ done in 7.9–8.2 s"
    assert "generating 7.5 s" in view.info(sandbox=True)


def test_a_job_whose_file_is_gone_says_so_and_shows_no_image(tmp_path: Path):
    view = panel_of(job(result_path=str(tmp_path / "gone.jpg"), result_url="https://cdn/x.jpg"), REGISTRY["bfl"])
    assert view.result is None and "is gone" in view.notes[-1] and "https://cdn/x.jpg" in view.notes[-1]


@pytest.mark.parametrize(
    ("fields", "resumable"),
    [
        (dict(state="failed", error_kind="deadline", task_id="t1"), True),
        (dict(state="stopped", task_id="t1"), True),
        (dict(state="stopped"), False),  # never submitted: nothing to wait for
        (dict(state="running", task_id="t1"), False),  # still running (a run left so by a crash: Resume waiting)
        (dict(state="failed", error_kind="rate_limit", task_id="t1"), False),
    ],
)
def test_only_submitted_stopped_or_timed_out_jobs_offer_resume_on_their_panel(fields, resumable):
    view = panel_of(job(**fields), REGISTRY["bfl"])
    assert view.is_resumable is resumable
    assert ("**Resume** waits for it again" in view.info(sandbox=True)) is resumable


def test_an_unfinished_job_shows_the_last_elapsed_time_it_reported():
    changes = (StateChange(state="queued", at=START), StateChange(state="running", at=START, elapsed_s=4.5))
    assert panel_of(job(state="running", changes=changes), REGISTRY["bfl"]).elapsed_s == 4.5


def test_the_timeline_lists_each_state_with_its_offset_from_the_start():
    later = START + timedelta(seconds=2.5)
    changes = (StateChange(state="queued", at=START), StateChange(state="succeeded", at=later, message="done in 2.5 s"))
    lines = timeline(job(changes=changes), START).splitlines()
    assert "(+0.0 s) ○ **queued**" in lines[0] and "(+2.5 s) ✔ **succeeded**: done in 2.5 s" in lines[1]


async def test_resumed_results_keep_the_request_first_sent():
    resumed = WireRequest(method="GET", url="(resumed)")
    result = JobResult(
        path="x.jpg",
        image_url="u",
        mime_type="image/jpeg",
        width=1,
        height=1,
        size_bytes=1,
        latency_s=1.0,
        cost_usd=None,
        cost_source=None,
        sent=resumed,
    )
    event = JobEvent(
        run_id="r1",
        provider="bfl",
        provider_label="Black Forest Labs",
        model="flux-kontext-pro",
        state="succeeded",
        elapsed_s=1.0,
        result=result,
    )

    async def events():
        yield event

    seen = [e async for e in with_sent(events(), {("bfl", "flux-kontext-pro"): POST})]
    assert seen[0].result is not None and seen[0].result.sent == POST


def test_results_and_kept_inputs_outside_the_working_directory_are_served_but_not_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the test's TMPDIR may lie under the checkout, the usual cwd
    paths = allowed_paths(Settings(out_dir=tmp_path / "out", data_dir=tmp_path / "data"))
    assert str(tmp_path / "out") in paths and str(tmp_path / "data" / "inputs") in paths
    assert str(tmp_path / "data") not in paths
