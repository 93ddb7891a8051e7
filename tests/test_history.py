"""The history store: round trips, search, resumable jobs, duplicates, atomic writes, migrations, the CLI.

Every test that takes ``store`` (or ``open_store``) runs twice: on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from playground.errors import ConfigError, InvalidInputError, StoreError
from playground.history import History, SqliteHistory
from playground.history.sqlite_schema import SCHEMA_VERSION
from playground.history_cli import add_history_commands, run_history_command
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage, JobEvent, JobRef, JobResult, WireRequest
from playground.service import GenerationService
from playground.settings import Settings
from tests.conftest import png_bytes

T0 = datetime(2025, 11, 23, 18, 0, tzinfo=UTC)
FOX = GenerationRequest(prompt="a red fox in snow", aspect_ratio="16:9", seed=7)
SENT = WireRequest(
    method="POST",
    url="https://api.example/create",
    headers={"Authorization": "Bearer ***"},
    body={"prompt": "a red fox in snow"},
)


class Ticker:
    """A wall clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def store(open_store) -> AsyncIterator[History]:
    opened = open_store(clock=Ticker())
    yield opened
    await opened.aclose()


@pytest.fixture
def sqlite_store(data_dir: Path) -> Iterator[SqliteHistory]:
    opened = SqliteHistory.open(data_dir, clock=Ticker())
    yield opened
    opened.close()


def event(
    state: str, *, run_id: str = "run1", provider: str = "kie", model: str = "flux-kontext-pro", **kw: Any
) -> JobEvent:
    return JobEvent(
        run_id=run_id,
        provider=provider,
        provider_label=provider.upper(),
        model=model,
        state=state,
        elapsed_s=kw.pop("elapsed_s", 1.0),
        **kw,
    )


def result(sent: WireRequest = SENT) -> JobResult:
    return JobResult(
        path="outputs/run1/kie.jpg",
        image_url="https://cdn.example/r.jpg",
        mime_type="image/jpeg",
        width=1024,
        height=768,
        size_bytes=2048,
        latency_s=12.5,
        cost_usd=0.025,
        cost_source="kie pricing page",
        sent=sent,
    )


async def succeed(store: History, run_id: str, provider: str = "kie", model: str = "flux-kontext-pro") -> None:
    await store.record(event("running", run_id=run_id, provider=provider, model=model, task_id=f"{run_id}-{provider}"))
    await store.record(event("succeeded", run_id=run_id, provider=provider, model=model, result=result()))


async def fail(store: History, run_id: str, provider: str = "kie", model: str = "flux-kontext-pro") -> None:
    await store.record(
        event(
            "failed",
            run_id=run_id,
            provider=provider,
            model=model,
            error="KIE reports the job failed.",
            code="501",
            kind="job_failed",
        )
    )


# --- lifecycle ---------------------------------------------------------------------------------------


async def test_a_run_is_kept_with_its_request_jobs_results_errors_and_every_state_change(open_store):
    store = open_store(clock=Ticker())
    await store.start_run("run1", FOX, [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-max")])
    await store.record(event("queued", notes=("KIE ignores the seed.",)))
    await store.record(event("running", task_id="t-1", sent=SENT, urls={"status": "https://api.example/t-1"}))
    await store.record(event("running", task_id="t-1", sent=SENT, message="running 2.0 s"))
    await store.record(event("succeeded", task_id="t-1", sent=SENT, result=result()))
    await store.record(
        event(
            "failed",
            provider="fal",
            model="flux-kontext-max",
            elapsed_s=3.5,
            error="fal refused the job on content grounds: nsfw.",
            code="nsfw",
            kind="moderated",
        )
    )
    await store.aclose()

    again = open_store()
    run = await again.get_run("run1")  # a new process sees everything
    await again.aclose()

    assert run is not None and run.kind == "generate" and run.outcome == "mixed"
    assert run.created_at == T0 + timedelta(seconds=1)
    assert run.request is not None and run.request["seed"] == 7 and run.request["aspect_ratio"] == "16:9"
    assert run.targets == (("kie", "flux-kontext-pro"), ("fal", "flux-kontext-max"))
    kie, fal = run.jobs
    assert [c.state for c in kie.changes] == ["queued", "running", "succeeded"]
    assert [c.at for c in kie.changes] == [T0 + timedelta(seconds=s) for s in (1, 3, 5)]
    assert (kie.task_id, kie.latency_s, kie.cost_usd, kie.cost_source) == ("t-1", 12.5, 0.025, "kie pricing page")
    assert (kie.result_path, kie.result_url) == ("outputs/run1/kie.jpg", "https://cdn.example/r.jpg")
    assert kie.sent == SENT and kie.notes == ("KIE ignores the seed.",)
    assert kie.urls == {"status": "https://api.example/t-1"}
    assert [c.state for c in fal.changes] == ["queued", "failed"]
    assert (fal.state, fal.error_code, fal.error_kind, fal.latency_s) == ("failed", "nsfw", "moderated", 3.5)
    assert fal.error == "fal refused the job on content grounds: nsfw."


async def test_a_local_input_is_kept_as_one_file_per_content_and_never_stored_inline(sqlite_store, data_dir):
    store = sqlite_store
    content = png_bytes()
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(content, "cat.png"))
    await store.start_run("edit1", request, [("kie", "flux-kontext-pro")], kind="edit")
    await store.start_run("edit2", request, [("kie", "flux-kontext-pro")], kind="edit")

    copies = list((data_dir / "inputs").iterdir())
    assert [p.name for p in copies] == [f"{hashlib.sha256(content).hexdigest()}.png"]
    assert copies[0].read_bytes() == content
    raw = (data_dir / "history.sqlite3").read_bytes() + (data_dir / "history.sqlite3-wal").read_bytes()
    assert base64.b64encode(content)[:40] not in raw and content[:64] not in raw
    run = await store.get_run("edit2")
    assert run is not None and run.kind == "edit" and run.input_path == copies[0]
    assert await store.request_of("edit2") == request


async def test_a_url_input_is_stored_as_its_url_and_the_request_rebuilt_as_it_was(store, data_dir):
    request = FOX.model_copy(update={"image": InputImage(url="https://img.example/cat.jpg"), "guidance": 3.5})
    await store.start_run("r", request, [("kie", "flux-kontext-pro")], kind="edit")
    assert not (data_dir / "inputs").exists()
    assert await store.request_of("r") == request


async def test_re_running_a_run_whose_input_copy_was_deleted_says_so(sqlite_store, data_dir):
    store = sqlite_store
    request = GenerationRequest(prompt="blue", image=image_from_bytes(png_bytes(), "cat.png"))
    await store.start_run("r", request, [("kie", "flux-kontext-pro")])
    for copy in (data_dir / "inputs").iterdir():
        copy.unlink()
    with pytest.raises(InvalidInputError, match="input image of run r"):
        await store.request_of("r")


async def test_an_unknown_run_is_none_and_has_no_request(store):
    assert await store.get_run("nope") is None
    with pytest.raises(KeyError):
        await store.request_of("nope")


async def test_a_run_kind_other_than_generate_or_edit_is_refused(store):
    with pytest.raises(ValueError, match="'upscale'"):
        await store.start_run("r", FOX, [], kind="upscale")


async def test_events_of_a_run_this_store_never_saw_start_are_kept_under_a_resume_run(store):
    await store.record(event("running", run_id="elsewhere", task_id="t-9"))
    run = await store.get_run("elsewhere")
    assert run is not None and run.kind == "resume" and run.request is None
    assert [job.task_id for job in run.jobs] == ["t-9"]


# --- search and filters ------------------------------------------------------------------------------


@pytest.fixture
async def seeded(store):
    runs = [
        ("a", "A red fox in snow", [("kie", "flux-kontext-pro")], succeed),
        ("b", "Un CAFÉ au lait", [("fal", "flux-kontext-max")], fail),
        ("c", "100% cotton shirt", [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-max")], None),
        ("d", "a blue fox", [("kie", "flux-kontext-max")], None),
    ]
    for i, (run_id, prompt, targets, finish) in enumerate(runs):
        await store.start_run(run_id, GenerationRequest(prompt=prompt), targets, created_at=T0 + timedelta(minutes=i))
        if finish is not None:
            await finish(store, run_id, *targets[0])
    await succeed(store, "c", "kie")
    await fail(store, "c", "fal", "flux-kontext-max")
    await store.record(event("running", run_id="d", model="flux-kontext-max", task_id="t-d"))
    return store


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["d", "c", "b", "a"]),
        ({"query": "FOX"}, ["d", "a"]),
        ({"query": "café"}, ["b"]),
        ({"query": "0%"}, ["c"]),
        ({"query": "wolf"}, []),
        ({"provider": "kie"}, ["d", "c", "a"]),
        ({"model": "flux-kontext-max"}, ["d", "c", "b"]),
        ({"provider": "kie", "model": "flux-kontext-max"}, ["d"]),
        ({"outcome": "succeeded"}, ["a"]),
        ({"outcome": "failed"}, ["b"]),
        ({"outcome": "mixed"}, ["c"]),
        ({"outcome": "running"}, ["d"]),
        ({"query": "fox", "outcome": "succeeded"}, ["a"]),
        ({"limit": 2}, ["d", "c"]),
        ({"limit": 2, "offset": 2}, ["b", "a"]),
    ],
)
async def test_runs_are_listed_newest_first_and_filtered(seeded, filters, expected):
    assert [run.run_id for run in await seeded.list_runs(**filters)] == expected


async def test_a_summary_names_each_job_with_its_state_and_the_total_cost(seeded):
    (mixed,) = await seeded.list_runs(outcome="mixed")
    assert mixed.job_states == (("fal", "flux-kontext-max", "failed"), ("kie", "flux-kontext-pro", "succeeded"))
    assert mixed.cost_usd == 0.025 and mixed.prompt == "100% cotton shirt"


async def test_an_unknown_outcome_is_refused(store):
    with pytest.raises(ValueError, match="'done'"):
        await store.list_runs(outcome="done")


# --- resumable jobs, duplicates ----------------------------------------------------------------------


async def test_unfinished_jobs_are_the_submitted_ones_without_a_terminal_state(open_store):
    store = open_store()
    await store.start_run(
        "r", FOX, [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-pro"), ("bfl", "flux-kontext-max")]
    )
    await store.record(event("running", task_id="t-kie", urls={"status": "https://api.example/s"}))
    await succeed(store, "r", "fal")
    await store.aclose()  # bfl was never submitted: it has no task id, so it can't be resumed (or resubmitted)

    again = open_store()
    (job,) = await again.unfinished_jobs()
    await again.aclose()

    assert job.ref() == JobRef(
        provider="kie",
        model="flux-kontext-pro",
        task_id="t-kie",
        urls={"status": "https://api.example/s"},
        submitted_at=job.created_at,  # a resumed job's latency counts from its original submit
    )
    assert job.ref().submitted_at.tzinfo is not None


async def test_a_duplicate_terminal_event_is_recorded_once(store):
    await store.start_run("run1", FOX, [("kie", "flux-kontext-pro")])
    done = event("succeeded", task_id="t-1", result=result())
    await store.record(done)
    await store.record(done)
    (job,) = (await store.get_run("run1")).jobs
    assert [c.state for c in job.changes] == ["queued", "succeeded"]
    assert job.updated_at == job.changes[-1].at


async def test_a_timed_out_job_resumed_to_success_keeps_its_whole_story(store):
    await store.start_run("run1", FOX, [("kie", "flux-kontext-pro")])
    await store.record(event("running", task_id="t-1", sent=SENT))
    await store.record(
        event("failed", task_id="t-1", error="KIE did not finish task t-1 within 300 s.", kind="deadline")
    )
    await store.record(event("running", task_id="t-1", message="submitted as t-1"))  # resumed: no sent, no notes
    await store.record(event("succeeded", task_id="t-1", result=result(WireRequest(method="GET", url="(resumed)"))))
    run = await store.get_run("run1")
    (job,) = run.jobs
    assert [c.state for c in job.changes] == ["queued", "running", "failed", "running", "succeeded"]
    assert job.error is None and job.error_kind is None and job.sent == SENT
    assert run.outcome == "succeeded"


# --- atomicity, concurrency --------------------------------------------------------------------------


def raw_sql(store: History, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on the store's database from another connection; the last one's rows."""
    if isinstance(store, SqliteHistory):
        with sqlite3.connect(store.path) as db:
            return [cur.fetchall() for cur in [db.execute(sql) for sql in statements]][-1]
    with psycopg.connect(store.url, autocommit=True) as pg:  # type: ignore[attr-defined]
        rows = [pg.execute(sql) for sql in statements][-1]
        return rows.fetchall() if rows.description else []


def break_state_inserts(store: History) -> None:
    """Make the second statement of every record() fail, from another connection, as a full disk would."""
    if isinstance(store, SqliteHistory):
        raw_sql(store, "CREATE TRIGGER broken BEFORE INSERT ON job_states BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        return
    raw_sql(
        store,
        "CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE 'disk full'; END$$",
        "CREATE TRIGGER broken BEFORE INSERT ON job_states FOR EACH ROW EXECUTE FUNCTION broken()",
    )


def repair(store: History) -> None:
    raw_sql(store, "DROP TRIGGER broken" + ("" if isinstance(store, SqliteHistory) else " ON job_states"))


async def test_a_failure_in_the_middle_of_recording_an_event_leaves_the_job_as_it_was(store):
    await store.start_run("run1", FOX, [("kie", "flux-kontext-pro")])
    break_state_inserts(store)
    with pytest.raises(StoreError, match="disk full"):
        await store.record(event("succeeded", task_id="t-1", result=result()))
    (job,) = (await store.get_run("run1")).jobs
    assert (job.state, job.task_id, job.result_path) == ("queued", None, None)
    repair(store)
    await store.record(event("succeeded", task_id="t-1", result=result()))  # the store is still usable
    assert (await store.get_run("run1")).jobs[0].state == "succeeded"


async def test_a_failure_in_the_middle_of_starting_a_run_leaves_no_run(store):
    break_state_inserts(store)
    with pytest.raises(StoreError):
        await store.start_run("run1", FOX, [("kie", "flux-kontext-pro")])
    assert await store.get_run("run1") is None and await store.list_runs() == []
    assert raw_sql(store, "SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_writes_from_many_tasks_at_once_all_land(store):
    await store.start_run("run1", FOX, [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-pro")])
    await asyncio.gather(*(succeed(store, "run1", provider) for provider in ("kie", "fal")))
    assert (await store.get_run("run1")).outcome == "succeeded"


def count_commits(store: SqliteHistory) -> list[str]:
    """Every COMMIT the store's own connection sends from now on."""
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return commits


def hold_the_worker(store: SqliteHistory) -> threading.Event:
    """Keep the store's worker busy until the returned event is set, as a slow write would."""
    release = threading.Event()
    store._worker.submit(release.wait)
    return release


async def record_together(store: SqliteHistory, *events: JobEvent) -> list[BaseException | None]:
    """Record ``events`` while the worker is held, so they share one group commit; each one's outcome."""
    release = hold_the_worker(store)
    writes = [asyncio.ensure_future(store.record(one)) for one in events]
    await asyncio.sleep(0)  # every record() has queued its event; none is on disk yet
    assert not any(write.done() for write in writes)
    release.set()
    return list(await asyncio.gather(*writes, return_exceptions=True))


async def test_events_that_arrive_while_the_store_is_busy_are_committed_together(sqlite_store):
    providers = [f"p{i}" for i in range(20)]
    await sqlite_store.start_run("run1", FOX, [(name, "flux-kontext-pro") for name in providers])
    commits = count_commits(sqlite_store)
    outcomes = await record_together(sqlite_store, *(event("running", provider=name) for name in providers))
    assert outcomes == [None] * 20
    assert commits == ["COMMIT"], "twenty events, one transaction"
    run = await sqlite_store.get_run("run1")
    assert [job.state for job in run.jobs] == ["running"] * 20
    assert all([change.state for change in job.changes] == ["queued", "running"] for job in run.jobs)


async def test_an_event_the_database_refuses_fails_alone_and_the_others_in_its_commit_are_kept(sqlite_store):
    await sqlite_store.start_run("run1", FOX, [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-pro")])
    raw_sql(
        sqlite_store,
        "CREATE TRIGGER picky BEFORE INSERT ON job_states WHEN NEW.message = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused this one'); END",
    )
    good, bad = await record_together(
        sqlite_store, event("running", provider="kie", message="fine"), event("running", provider="fal", message="bad")
    )
    assert good is None
    assert isinstance(bad, StoreError) and "refused this one" in str(bad)
    states = {job.provider: job.state for job in (await sqlite_store.get_run("run1")).jobs}
    assert states == {"kie": "running", "fal": "queued"}


async def test_an_event_that_hits_a_bug_fails_alone_and_the_others_in_its_commit_are_kept(sqlite_store, monkeypatch):
    from playground.history import queries

    await sqlite_store.start_run("run1", FOX, [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-pro")])
    real = queries.job_params

    def job_params(event, stamp):
        if event.provider == "fal":
            raise ValueError("a bug in keeping fal's event")
        return real(event, stamp)

    monkeypatch.setattr(queries, "job_params", job_params)
    good, bad = await record_together(sqlite_store, event("running", provider="kie"), event("running", provider="fal"))
    assert good is None
    assert isinstance(bad, ValueError) and "a bug" in str(bad)
    states = {job.provider: job.state for job in (await sqlite_store.get_run("run1")).jobs}
    assert states == {"kie": "running", "fal": "queued"}


async def test_when_the_database_itself_fails_every_event_in_the_commit_hears_it_and_none_is_half_kept(sqlite_store):
    await sqlite_store.start_run("run1", FOX, [("kie", "flux-kontext-pro"), ("fal", "flux-kontext-pro")])
    release = hold_the_worker(sqlite_store)
    writes = [asyncio.ensure_future(sqlite_store.record(event("running", provider=p))) for p in ("kie", "fal")]
    await asyncio.sleep(0)
    with sqlite3.connect(sqlite_store.path, timeout=0) as other:  # another process holds the write lock
        other.execute("BEGIN IMMEDIATE")
        sqlite_store._db.execute("PRAGMA busy_timeout = 50")
        release.set()
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        other.rollback()
    assert [type(outcome) for outcome in outcomes] == [StoreError, StoreError]
    assert all("locked" in str(outcome) for outcome in outcomes)
    assert {job.state for job in (await sqlite_store.get_run("run1")).jobs} == {"queued"}


async def test_the_store_never_runs_on_the_event_loops_thread(sqlite_store):
    store = sqlite_store
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = store._runs

    def spy(**filters):
        seen.append(threading.get_ident())
        return original(**filters)

    store._runs = spy
    await store.list_runs()
    assert seen and loop_thread not in seen


# --- schema versions ---------------------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, kind TEXT NOT NULL,
    request_json TEXT, targets_json TEXT NOT NULL DEFAULT '[]');
CREATE TABLE jobs (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    provider TEXT NOT NULL, model TEXT NOT NULL, task_id TEXT, state TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, latency_s REAL, cost_usd REAL, error TEXT, error_code TEXT, error_kind TEXT,
    result_url TEXT, result_path TEXT, sent_json TEXT, notes_json TEXT NOT NULL DEFAULT '[]',
    UNIQUE (run_id, provider, model));
CREATE TABLE job_states (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    state TEXT NOT NULL, at TEXT NOT NULL, elapsed_s REAL, message TEXT NOT NULL DEFAULT '');
PRAGMA user_version = 1;
"""


def write_v1(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    db = sqlite3.connect(data_dir / "history.sqlite3")
    db.executescript(V1_SCHEMA)
    for i, prompt in enumerate(["Old fox", "old owl"]):
        at = (T0 + timedelta(minutes=i)).isoformat(timespec="microseconds")
        db.execute(
            "INSERT INTO runs VALUES (?, ?, 'generate', ?, ?)",
            (
                f"old{i}",
                at,
                json.dumps({"prompt": prompt, "model": "flux-kontext-pro"}),
                '[["kie", "flux-kontext-pro"]]',
            ),
        )
        db.execute(
            """INSERT INTO jobs (run_id, provider, model, task_id, state, created_at, updated_at, latency_s,
                   cost_usd, result_path, sent_json) VALUES (?, 'kie', 'flux-kontext-pro', ?, ?, ?, ?, 9.5, 0.025,
                   'outputs/old.jpg', ?)""",
            (f"old{i}", f"t{i}", ["succeeded", "running"][i], at, at, SENT.model_dump_json()),
        )
        db.execute("INSERT INTO job_states (job_id, state, at) VALUES (?, 'queued', ?)", (i + 1, at))
    db.commit()
    db.close()


async def test_a_version_1_history_is_migrated_to_the_current_version_without_losing_rows(data_dir):
    write_v1(data_dir)

    store = SqliteHistory.open(data_dir)

    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT COUNT(*) FROM job_states").fetchone() == (2,)
    assert [run.run_id for run in await store.list_runs()] == ["old1", "old0"]
    assert [run.run_id for run in await store.list_runs(query="FOX")] == ["old0"]  # the prompt was carried over
    old = await store.get_run("old0")
    assert old is not None
    (job,) = old.jobs
    assert (job.state, job.latency_s, job.result_path, job.sent, job.urls) == (
        "succeeded",
        9.5,
        "outputs/old.jpg",
        SENT,
        {},
    )
    assert [j.task_id for j in await store.unfinished_jobs()] == ["t1"]
    assert (await store.request_of("old1")).prompt == "old owl"


def test_a_new_history_is_created_at_the_current_version_in_wal_mode(sqlite_store, data_dir):
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_history_written_by_a_newer_playground_is_refused_untouched(data_dir):
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="newer than this playground"):
        SqliteHistory.open(data_dir)


# --- the service writes here -------------------------------------------------------------------------


async def test_a_sandbox_run_through_the_service_lands_in_the_history(settings: Settings, open_store) -> None:
    store = open_store()
    service = GenerationService(settings, history=store)
    try:
        events = [e async for e in service.run(service.plan(FOX, [("kie", "flux-kontext-pro")]))]
    finally:
        await service.aclose()
    run, kept = await store.get_run(events[-1].run_id), events[-1].result
    await store.aclose()
    assert run is not None and run.outcome == "succeeded" and run.prompt == FOX.prompt
    (job,) = run.jobs
    assert kept is not None and job.result_path == kept.path and Path(kept.path).is_file()
    assert job.sent is not None and "test-key" not in job.sent.model_dump_json()
    assert [c.state for c in job.changes][-1] == "succeeded"


# --- the CLI -----------------------------------------------------------------------------------------


async def cli(argv: list[str], settings: Settings) -> tuple[int, str, str]:
    root = argparse.ArgumentParser()
    add_history_commands(root.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    code = await run_history_command(root.parse_args(argv), settings, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_history_lists_runs_newest_first_with_each_job_state(seeded, store_settings):
    code, out, _ = await cli(["history"], store_settings)
    assert code == 0
    heads = [line.split()[3] for line in out.splitlines() if not line.startswith(" ")]
    assert heads == ["d", "c", "b", "a"]
    assert "fal max failed, kie pro succeeded; $0.025" in out


async def test_history_json_applies_the_filters(seeded, store_settings):
    code, out, _ = await cli(["history", "--provider", "kie", "--outcome", "mixed", "--json"], store_settings)
    assert code == 0
    assert [run["run_id"] for run in json.loads(out)] == ["c"]


async def test_history_says_so_when_no_run_matches(seeded, store_settings):
    assert (await cli(["history", "--query", "wolf"], store_settings))[1] == "No run matches these filters.\n"


async def test_history_show_prints_the_request_jobs_errors_and_state_changes(seeded, store_settings):
    code, out, _ = await cli(["history", "show", "c"], store_settings)
    assert code == 0
    assert "run c: generate, mixed" in out and "prompt: 100% cotton shirt" in out
    assert "- kie flux-kontext-pro: succeeded, task c-kie, 12.5 s, $0.025 (kie pricing page)" in out
    assert "image: outputs/run1/kie.jpg (from https://cdn.example/r.jpg)" in out
    assert "error [job_failed/501]: KIE reports the job failed." in out
    states = re.findall(r"^  \d\d:\d\d:\d\d (\w+)", out, re.MULTILINE)
    assert states == ["queued", "running", "succeeded", "queued", "failed"]


@pytest.mark.parametrize("argv", [["history", "show", "c", "--json"], ["history", "--json", "show", "c"]])
async def test_history_show_json_is_the_whole_run(seeded, store_settings, argv):
    code, out, _ = await cli(argv, store_settings)
    run = json.loads(out)
    assert code == 0 and run["run_id"] == "c" and run["outcome"] == "mixed"
    assert [[c["state"] for c in job["changes"]] for job in run["jobs"]] == [
        ["queued", "running", "succeeded"],
        ["queued", "failed"],
    ]


async def test_history_show_of_an_unknown_run_exits_2_with_one_sentence(store, store_settings):
    code, out, err = await cli(["history", "show", "nope"], store_settings)
    assert code == 2 and out == ""
    assert err.startswith("error: run nope is not in the history") and len(err.strip().splitlines()) == 1


async def test_runs_can_be_listed_for_one_owner_only(open_store):
    from playground.models import GenerationRequest as Request

    store = open_store()
    await store.start_run(
        "mine", Request(prompt="my fox"), [("kie", "flux-kontext-pro")], kind="generate", owner="browser-a"
    )
    await store.start_run(
        "theirs", Request(prompt="their fox"), [("kie", "flux-kontext-pro")], kind="generate", owner="b"
    )
    assert [r.run_id for r in await store.list_runs(owner="browser-a")] == ["mine"]
    assert {r.run_id for r in await store.list_runs()} == {"mine", "theirs"}
    await store.aclose()
