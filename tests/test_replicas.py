"""Two replicas on one PostgreSQL, in one process: callbacks reach the owner, expired leases are taken over.

The leases themselves run on the database's clock; a test makes one run out by moving ``lease_until`` into the
past, not by waiting. (tests/test_replicas_app.py kills a real app process instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import uvicorn
from starlette.applications import Starlette

from playground.history import PostgresHistory
from playground.models import GenerationRequest, JobEvent, JobRef, JobStatus
from playground.providers.base import CallbackUpdate
from playground.replicas import Replicas
from playground.service import GenerationService
from playground.webhooks import routes
from tests.conftest import callback_answers, collect, final

FOX = GenerationRequest(prompt="a red fox")
PRO = ("kie", "flux-kontext-pro")


@dataclass
class Replica:
    name: str
    store: PostgresHistory
    replicas: Replicas
    service: GenerationService


@contextlib.asynccontextmanager
async def replica(name: str, url: str, settings, tmp_path: Path, **options) -> AsyncIterator[Replica]:
    """A replica as the app builds one (composition.build_service), listening, without its heartbeat loop."""
    store = PostgresHistory.open(url, tmp_path / name, replica=name)
    replicas = Replicas(store)
    service = GenerationService(settings, history=store, inbox=replicas.inbox, **options)
    replicas.attach(service)
    listener = asyncio.ensure_future(replicas.listen())
    await asyncio.wait_for(replicas.listening(), 10)
    try:
        yield Replica(name, store, replicas, service)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await service.aclose()
        await store.aclose()


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """``app`` on a loopback port, on this event loop (as the app's routes share the loop of its service)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def pair(pg_url, settings, tmp_path):
    """Replicas A and B; providers call back to B only (B's webhook routes on a loopback port)."""
    async with (
        replica("B", pg_url, settings, tmp_path) as b,
        serving(Starlette(routes=routes(b.service, None))) as url,
    ):
        async with replica("A", pg_url, settings, tmp_path, callback_base_url=url) as a:
            yield a, b, url


def sql(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


async def submitted_by(owner: Replica, sandbox, run_id: str = "run1") -> str:
    """A job ``owner`` created at the sandbox and recorded as waiting for, as if it then died; its task id."""
    submission = await owner.service.provider("kie").submit(FOX)
    task_id = submission.job.task_id
    await owner.store.start_run(run_id, FOX, [PRO])
    running = JobEvent(
        run_id=run_id, provider="kie", provider_label="KIE AI", model=PRO[1], state="running", elapsed_s=0.1,
        task_id=task_id, message=f"submitted as {task_id}",
    )  # fmt: skip
    await owner.store.record(running)
    return task_id


def expire(url: str, task_id: str | None = None) -> None:
    """The lease runs out (its replica stopped renewing it)."""
    where = "task_id = %s" if task_id else "TRUE"
    sql(url, f"UPDATE jobs SET lease_until = now() - interval '1 second' WHERE {where}", (task_id,) if task_id else ())


async def test_a_callback_delivered_to_the_other_replica_finishes_the_owners_job_without_a_status_read(
    pair, sandbox, pg_url
):
    a, _, _ = pair
    # RunAPI signs the whole body, so its delivery is trusted as it comes (KIE's is a nudge confirmed by a read)
    events = await collect(a.service, FOX, [("runapi", "flux-kontext-pro")])
    assert final(events, "runapi").state == "succeeded"
    assert sandbox.state.count("runapi", "status") == 0, "the owner read the status instead of hearing the callback"
    assert await callback_answers(sandbox, "runapi", count=1) == [200]
    assert sql(pg_url, "SELECT task_id FROM deliveries") == [(final(events, "runapi").task_id,)], "it went through B"
    assert sql(pg_url, "SELECT lease_owner, lease_until FROM jobs") == [("A", None)]


async def test_a_job_whose_owner_stopped_renewing_is_taken_over_by_task_id_and_never_submitted_again(
    pair, sandbox, pg_url
):
    a, b, _ = pair
    task_id = await submitted_by(a, sandbox)
    assert await b.replicas.take_over() == [], "A's lease is still good"
    expire(pg_url, task_id)
    waits = await b.replicas.take_over()
    await asyncio.wait_for(asyncio.gather(*waits), 30)
    run = await b.store.get_run("run1")
    (job,) = run.jobs
    assert (job.state, job.task_id) == ("succeeded", task_id)
    assert sandbox.state.count("kie", "create") == 1
    assert sql(pg_url, "SELECT lease_owner FROM jobs") == [("B",)]
    assert await a.replicas.take_over() == [], "a finished job has no lease to take over"


async def test_a_callback_kept_while_the_owner_was_dead_finishes_the_job_at_takeover_without_a_status_read(
    pair, sandbox, pg_url
):
    a, b, _ = pair
    task_id = await submitted_by(a, sandbox)
    sandbox.state.jobs[task_id].duration_s = 0  # the provider has finished it
    status = await b.service.provider("kie").status(JobRef(provider="kie", model=PRO[1], task_id=task_id))
    reads = sandbox.state.count("kie", "status")
    answer = await b.replicas.hand_over("kie", CallbackUpdate(task_id, status, "d-1"))
    assert answer == (200, "handed to the replica waiting for it")
    expire(pg_url, task_id)
    await asyncio.wait_for(asyncio.gather(*await b.replicas.take_over()), 30)
    assert (await b.store.get_run("run1")).jobs[0].state == "succeeded"
    assert sandbox.state.count("kie", "status") == reads, "the kept callback, not a new read, ended the wait"


async def test_jobs_another_replica_is_claiming_right_now_are_skipped_not_waited_for(pair, sandbox, pg_url):
    a, b, _ = pair
    for i in range(4):
        await submitted_by(a, sandbox, run_id=f"run{i}")
    expire(pg_url)
    with psycopg.connect(pg_url) as busy:  # another replica's claim, in the middle of its transaction
        locked = busy.execute("SELECT task_id FROM jobs ORDER BY id LIMIT 2 FOR UPDATE").fetchall()
        claimed = await asyncio.wait_for(b.replicas.shared.claim_expired(), 5)
        busy.rollback()
    assert {c.job.task_id for c in claimed} == {t for (t,) in sql(pg_url, "SELECT task_id FROM jobs")} - {
        t for (t,) in locked
    }
    assert len(claimed) == 2


async def test_renewing_keeps_the_jobs_a_replica_waits_for_and_lets_the_others_go(pair, sandbox, pg_url):
    a, _, _ = pair
    waited = await submitted_by(a, sandbox, run_id="waited")
    await submitted_by(a, sandbox, run_id="forgotten")
    expire(pg_url)
    assert await a.replicas.shared.renew([("kie", waited)]) == 1
    live = sql(pg_url, "SELECT task_id FROM jobs WHERE lease_until > now()")
    assert live == [(waited,)]


async def test_a_job_never_submitted_by_a_dead_replica_is_failed_once_its_lease_ran_out(pair, pg_url):
    a, b, _ = pair
    await a.store.start_run("dead", FOX, [PRO])
    await b.store.start_run("alive", FOX, [PRO])
    sql(pg_url, "UPDATE jobs SET lease_until = now() - interval '1 second' WHERE run_id = 'dead'")
    await b.replicas.take_over()
    states = dict(sql(pg_url, "SELECT run_id, state FROM jobs"))
    assert states == {"dead": "failed", "alive": "queued"}


async def test_hand_over_answers_unknown_duplicate_and_finished_deliveries(pair, sandbox):
    a, b, _ = pair
    unknown = CallbackUpdate("no-such-task", None, "d-0")
    assert await b.replicas.hand_over("kie", unknown) == (404, "unknown task")
    events = await collect(a.service, FOX, [PRO])
    task_id = final(events, "kie").task_id
    late = CallbackUpdate(task_id, JobStatus(state="succeeded"), "d-late")
    assert await b.replicas.hand_over("kie", late) == (200, "already finished")
    assert await b.replicas.hand_over("kie", late) == (200, "duplicate")


async def test_a_waiter_that_registers_after_the_callback_was_kept_still_gets_it(pair, sandbox):
    a, b, _ = pair
    task_id = await submitted_by(a, sandbox)
    status = JobStatus(state="succeeded", image_urls=("https://cdn.example/x.jpg",))
    await b.replicas.hand_over("kie", CallbackUpdate(task_id, status, "early"))
    waiter = a.replicas.inbox.register("kie", task_id)
    await waiter.nap(10)  # woken by the kept delivery, long before 10 s
    assert waiter.delivered() == status
