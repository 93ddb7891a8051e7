"""A live run: Stop closes the engine's stream (so its jobs are recorded) before it returns; what a run makes
from its results (tiles, what an edit changed, one zip); the keys a visitor may save."""

from __future__ import annotations

import asyncio
import json
import zipfile

import pytest
from PIL import Image

from playground.models import JobEvent, JobResult, WireRequest
from playground.providers import REGISTRY
from playground.ui import forms
from playground.ui.board import Board
from playground.ui.live import LiveRun, board_json, bundle, derive, until_stopped

PRO = "flux-kontext-pro"


def event(state: str, provider: str = "kie", **kw) -> JobEvent:
    fields = dict(run_id="r1", provider=provider, provider_label=provider, model=PRO, elapsed_s=1.0)
    return JobEvent(state=state, **(fields | kw))


async def test_stop_closes_the_engines_stream_before_the_stopped_run_ends():
    closed_by_stop = asyncio.Event()

    async def engine():  # yields one event, then waits for ever (a job still running)
        try:
            yield event("running", task_id="t1")
            await asyncio.Event().wait()
        finally:
            closed_by_stop.set()  # where the engine records unfinished jobs as stopped

    run = LiveRun(Board.start([("kie", PRO)], REGISTRY), renderer=None)
    seen = []

    async def consume():
        async for item in until_stopped(engine(), run.stop, run.closed):
            seen.append(item.state)

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.01)
    assert await run.stop_and_wait(timeout_s=2.0) is True
    assert closed_by_stop.is_set() and seen == ["running"], "the engine's stream was closed, not left waiting"
    await asyncio.wait_for(consumer, 1.0)


async def test_a_stream_that_ends_by_itself_also_says_so():
    async def engine():
        yield event("succeeded")

    closed = asyncio.Event()
    states = [e.state async for e in until_stopped(engine(), asyncio.Event(), closed)]
    assert states == ["succeeded"] and closed.is_set()


def picture(path, colour) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), colour).save(path)


async def test_results_get_a_tile_what_the_edit_changed_and_one_zip_with_the_run(tmp_path):
    before, after = tmp_path / "in.png", tmp_path / "run1" / f"kie-{PRO}.png"
    picture(before, (0, 0, 0))
    picture(after, (250, 250, 250))  # every pixel changed
    sent = WireRequest(method="POST", url="https://kie/x")
    done = JobResult(
        path=str(after),
        image_url="u",
        mime_type="image/png",
        width=64,
        height=48,
        size_bytes=after.stat().st_size,
        latency_s=2.0,
        cost_usd=None,
        cost_source=None,
        sent=sent,
    )
    board = Board.start([("kie", PRO), ("bfl", PRO)], REGISTRY, input_path=str(before))
    board.apply(event("succeeded", task_id="t1", result=done))
    board.apply(event("failed", provider="bfl", error="no", kind="job_failed"))
    assert await derive(board, [("kie", PRO), ("bfl", PRO)]) == [("kie", PRO)]
    kie = board.panels[("kie", PRO)]
    assert kie.tile is not None and kie.tile.is_file() and kie.changes.share == pytest.approx(1.0)
    target = await bundle(board, record=None)
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == sorted([after.name, "run.json"])
        run = json.loads(archive.read("run.json"))
    assert run == board_json(board) and [job["state"] for job in run["jobs"]] == ["succeeded", "failed"]


@pytest.mark.parametrize(
    ("provider", "typed", "problem"),
    [
        ("kie", "k", "That KIE AI key is 1 character long; paste the whole key."),
        ("kie", "two words here", "That KIE AI key has a space in it; paste the key alone."),
        ("replicate", "r8_tooshort", "That does not look like a Replicate key: Replicate tokens start with r8_"),
        ("replicate", "sk-" + "x" * 37, "That does not look like a Replicate key"),
        ("runflow", "rf_svc_0123456789", "That does not look like a Runflow key: Runflow keys that run models"),
        ("replicate", "r8_" + "a" * 37, None),
        ("runflow", "rf_live_0123456789", None),
        ("kie", "a-key-without-a-documented-shape", None),
    ],
)
def test_a_key_is_checked_for_its_shape_where_the_provider_documents_one(provider, typed, problem):
    found = forms.key_problem(REGISTRY[provider], typed)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem)), found
