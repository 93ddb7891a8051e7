"""Paging the History list by cursor, on both stores; what each store keeps of a local input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta

import psycopg
import pytest

from playground.errors import InvalidInputError
from playground.images import image_from_bytes
from playground.models import GenerationRequest
from tests.conftest import png_bytes
from tests.test_history import T0, Ticker, event, fail, succeed

PRO = [("kie", "flux-kontext-pro")]


@pytest.fixture
async def store(open_store):
    opened = open_store(clock=Ticker())
    yield opened
    await opened.aclose()


async def fill(store, count: int, *, same_moment: bool = False) -> list[str]:
    """``count`` runs, every third failed; newest first, as the list shows them."""
    ids = []
    for i in range(count):
        run_id = f"r{i:02d}"
        at = T0 if same_moment else T0 + timedelta(seconds=i)
        await store.start_run(run_id, GenerationRequest(prompt=f"fox {i}"), PRO, created_at=at)
        await (fail if i % 3 == 0 else succeed)(store, run_id)
        ids.append(run_id)
    return ids[::-1]


async def pages(store, size: int, **filters) -> list[list[str]]:
    found, cursor = [], None
    while True:
        page = await store.list_runs(limit=size, after=cursor, **filters)
        if not page:
            return found
        found.append([run.run_id for run in page])
        cursor = page[-1].cursor


async def test_following_cursors_walks_the_whole_list_once_in_order(store):
    newest_first = await fill(store, 11)
    walked = await pages(store, 4)
    assert [len(page) for page in walked] == [4, 4, 3]
    assert sum(walked, []) == newest_first
    offsets = [[run.run_id for run in await store.list_runs(limit=4, offset=n)] for n in (0, 4, 8)]
    assert offsets == walked


async def test_runs_started_in_the_same_microsecond_are_paged_without_loss_or_repeat(store):
    newest_first = await fill(store, 7, same_moment=True)
    assert sum(await pages(store, 3), []) == newest_first


async def test_a_cursor_keeps_the_filters_of_its_list(store):
    newest_first = await fill(store, 10)
    failed = [run_id for run_id in newest_first if int(run_id[1:]) % 3 == 0]
    assert sum(await pages(store, 2, outcome="failed"), []) == failed


async def test_a_new_run_does_not_shift_the_pages_after_a_cursor(store):
    await fill(store, 6)
    first = await store.list_runs(limit=3)
    await store.start_run("late", GenerationRequest(prompt="fox late"), PRO, created_at=T0 + timedelta(hours=1))
    second = await store.list_runs(limit=3, after=first[-1].cursor)
    assert [run.run_id for run in second] == ["r02", "r01", "r00"]


@pytest.mark.parametrize("cursor", ["nonsense", "2025-11-23T18:00:00+00:00~x", "~3"])
async def test_a_cursor_the_store_did_not_give_out_is_refused_with_a_sentence(store, cursor):
    with pytest.raises(ValueError, match="not one this history gave out"):
        await store.list_runs(after=cursor)


async def test_an_event_keeps_the_runs_outcome_current_for_the_outcome_filter(store):
    await store.start_run("r", GenerationRequest(prompt="fox"), PRO)
    assert [run.run_id for run in await store.list_runs(outcome="running")] == ["r"]
    await store.record(event("running", run_id="r", task_id="t"))
    await store.record(event("stopped", run_id="r", task_id="t"))
    assert [run.run_id for run in await store.list_runs(outcome="stopped")] == ["r"]
    assert await store.list_runs(outcome="running") == []


# --- local inputs in PostgreSQL: one row per content, copied to disk for the page -------------------------


@pytest.fixture
async def pg_store(pg_url, tmp_path):
    from playground.history import PostgresHistory

    opened = PostgresHistory.open(pg_url, tmp_path / "data")
    yield opened
    await opened.aclose()


async def test_postgres_keeps_a_local_input_once_per_content_outside_the_request(pg_store, pg_url, tmp_path):
    content = png_bytes()
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(content, "cat.png"))
    await pg_store.start_run("edit1", request, PRO, kind="edit")
    await pg_store.start_run("edit2", request, PRO, kind="edit")
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT sha256 FROM inputs").fetchall() == [(hashlib.sha256(content).hexdigest(),)]
        (raw,) = db.execute("SELECT request_json FROM runs WHERE run_id = 'edit2'").fetchone()
    assert base64.b64encode(content)[:40].decode() not in raw
    run = await pg_store.get_run("edit2")
    assert run is not None and run.input_path is not None and run.input_path.read_bytes() == content
    assert run.input_path.is_relative_to(tmp_path / "data" / "inputs")
    assert await pg_store.request_of("edit2") == request


async def test_postgres_says_so_when_a_runs_input_is_gone(pg_store, pg_url):
    request = GenerationRequest(prompt="blue", image=image_from_bytes(png_bytes(), "cat.png"))
    await pg_store.start_run("r", request, PRO)
    with psycopg.connect(pg_url) as db:
        db.execute("DELETE FROM inputs")
    with pytest.raises(InvalidInputError, match="input image of run r"):
        await pg_store.request_of("r")


async def test_jobs_of_one_run_ending_at_the_same_moment_leave_the_runs_outcome_right(store):
    from playground.providers import REGISTRY

    targets = [(name, "flux-kontext-pro") for name in REGISTRY]
    for attempt in range(3):
        run_id = f"together{attempt}"
        await store.start_run(run_id, GenerationRequest(prompt="fox"), targets)
        await asyncio.gather(*(succeed(store, run_id, name) for name, _ in targets))
        assert [run.outcome for run in await store.list_runs(limit=1)] == ["succeeded"]
