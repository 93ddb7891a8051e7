"""Arena votes in the history (SQLite and PostgreSQL): kept whole or not at all, once per round and visitor,
across restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from playground.errors import DuplicateVoteError
from playground.history import History, SqliteHistory, Vote
from playground.history.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from playground.models import GenerationRequest, JobEvent, JobResult, WireRequest

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PRO = "flux-kontext-pro"


def vote(round_id: str = "r1", *, pair: int = 0, owner: str = "visitor", at: datetime = T0, **kw: object) -> Vote:
    fields: dict[str, object] = dict(
        round_id=round_id,
        pair=pair,
        run_id="run1",
        mode="t2i",
        prompt="a fox",
        a_provider="kie",
        a_model=PRO,
        a_task_id="task-a",
        b_provider="bfl",
        b_model=PRO,
        b_task_id="task-b",
        outcome="a",
        choice="A",
        owner=owner,
        at=at,
    )
    return Vote.model_validate(fields | kw)


@pytest.fixture
async def store(open_store) -> AsyncIterator[History]:
    history = open_store()
    yield history
    await history.aclose()


async def test_votes_are_kept_with_every_field_and_read_back_in_order(store):
    kept = [vote("r1"), vote("r2", outcome="tie", choice="B", identical=True, mode="edit")]
    await store.record_votes(kept[:1])
    await store.record_votes(kept[1:])
    assert await store.list_votes() == kept
    assert await store.list_votes(mode="edit") == kept[1:]
    assert await store.list_votes(owner="nobody") == []


async def test_a_second_vote_on_a_round_by_the_same_visitor_is_refused_and_keeps_nothing(store):
    await store.record_votes([vote("r1")])
    with pytest.raises(DuplicateVoteError, match="already voted"):
        await store.record_votes([vote("r2", pair=0), vote("r1", choice="B", outcome="b")])
    assert [v.round_id for v in await store.list_votes()] == ["r1"], "the batch is all or nothing"
    await store.record_votes([vote("r1", owner="someone else")])  # the key is (round, owner, pair)


async def test_rounds_voted_by_a_visitor_are_counted_from_a_moment_on(store):
    await store.record_votes([vote("r1", at=T0), vote("r1", pair=1, at=T0)])  # one round, two pairs
    await store.record_votes([vote("r2", at=T0 + timedelta(seconds=30)), vote("r3", owner="other", at=T0)])
    assert await store.count_voted_rounds("visitor", T0) == 2
    assert await store.count_voted_rounds("visitor", T0 + timedelta(seconds=1)) == 1
    assert await store.count_voted_rounds("nobody", T0) == 0


async def test_votes_survive_closing_and_reopening_the_store(open_store):
    first = open_store()
    await first.record_votes([vote("r1"), vote("r1", pair=1, b_provider="fal")])
    await first.aclose()
    again = open_store()
    try:
        assert [(v.round_id, v.pair, v.b_provider) for v in await again.list_votes()] == [
            ("r1", 0, "bfl"),
            ("r1", 1, "fal"),
        ]
        with pytest.raises(DuplicateVoteError):
            await again.record_votes([vote("r1")])
    finally:
        await again.aclose()


def done(run_id: str, provider: str, state: str, latency: float | None, cost: float | None) -> JobEvent:
    sent = WireRequest(method="POST", url="https://example.test")
    result = None
    if state == "succeeded":
        result = JobResult(
            path="/x.jpg", image_url="https://example.test/x.jpg", mime_type="image/jpeg", width=1, height=1,
            size_bytes=1, latency_s=latency or 0.0, cost_usd=cost, cost_source="test", sent=sent,
        )  # fmt: skip
    return JobEvent(
        run_id=run_id, provider=provider, provider_label=provider, model=PRO, state=state, elapsed_s=latency or 0.0,
        result=result, error=None if result else "it failed",
    )  # fmt: skip


async def test_job_facts_give_each_jobs_state_latency_and_cost_by_run_kind(store):
    await store.start_run("g1", GenerationRequest(prompt="x"), [("kie", PRO), ("bfl", PRO)], kind="generate")
    await store.record(done("g1", "kie", "succeeded", 3.5, 0.025))
    await store.record(done("g1", "bfl", "failed", None, None))
    await store.start_run("e1", GenerationRequest(prompt="y"), [("kie", PRO)], kind="edit")
    facts = await store.job_facts(kind="generate")
    assert [(f.provider, f.state, f.latency_s, f.cost_usd) for f in facts] == [
        ("kie", "succeeded", 3.5, 0.025),
        ("bfl", "failed", 0.0, None),
    ]
    assert [f.state for f in await store.job_facts(kind="edit")] == ["queued"]
    assert len(await store.job_facts()) == 3


async def test_a_history_from_before_the_arena_gets_the_votes_table(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "history.sqlite3") as db:
        for step in MIGRATIONS[:3]:  # the file as the playground left it before votes existed
            step(db)
        db.execute("PRAGMA user_version = 3")
    store = SqliteHistory.open(data)
    try:
        await store.record_votes([vote()])
        assert len(await store.list_votes()) == 1
    finally:
        await store.aclose()
    with sqlite3.connect(data / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        columns = [row[1] for row in db.execute("PRAGMA table_info(votes)")]
    assert columns[:4] == ["id", "round_id", "pair", "run_id"] and "owner" in columns
