"""The generation service end to end against the sandbox: fan-out, faults, deadline, resume.

The resume tests that keep a history run on SQLite and on PostgreSQL (``open_store``).
"""

from __future__ import annotations

import pytest

from playground.errors import ConfigError, InvalidInputError, UnsupportedParameterError
from playground.models import GenerationRequest, JobRef
from playground.service import GenerationService
from tests.conftest import TEST_KEY, collect, final, png_bytes

FOX = GenerationRequest(prompt="a red fox")


async def test_runs_every_target_in_parallel(service, sandbox):
    sandbox.state.job_seconds = 0.6
    targets = [
        ("kie", "flux-kontext-pro"),
        ("kie", "flux-kontext-max"),
        ("fluxapi", "flux-kontext-pro"),
        ("fluxapi", "flux-kontext-max"),
    ]
    events = await collect(service, FOX, targets)
    assert [final(events, p, m).state for p, m in targets] == ["succeeded"] * 4
    # Not timed (bench/fanout.py measures): every job was created before the first of them ended.
    jobs = list(sandbox.state.jobs.values())
    assert len(jobs) == 4
    assert max(job.created_at for job in jobs) < min(job.created_at + job.duration_s for job in jobs)


async def test_streams_queued_then_running_then_succeeded(service, sandbox):
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")])
    states = [e.state for e in events]
    assert states[0] == "queued" and states[1] == "running" and states[-1] == "succeeded"
    assert events[1].task_id and events[-1].result.latency_s > 0


async def test_429_with_retry_after_on_a_status_read_is_waited_out(service, sandbox):
    sandbox.state.inject("kie", "status", "429")
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")])
    assert final(events, "kie").state == "succeeded"
    assert sandbox.state.count("kie", "create") == 1


async def test_500_on_create_fails_the_job_once_and_is_not_retried(service, sandbox):
    sandbox.state.inject("kie", "create", "500")
    events = await collect(service, FOX, [("kie", "flux-kontext-pro"), ("fluxapi", "flux-kontext-pro")])
    failed = final(events, "kie")
    assert failed.state == "failed" and failed.kind == "unavailable"
    assert failed.error.startswith("KIE AI is unavailable (HTTP 500)")
    assert sandbox.state.count("kie", "create") == 1
    assert final(events, "fluxapi").state == "succeeded"


async def test_failed_job_surfaces_the_providers_reason(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="fox sandbox:fail"), [("kie", "flux-kontext-pro")])
    done = final(events, "kie")
    assert done.state == "failed" and done.kind == "job_failed"
    assert "Image generation task failed" in done.error


async def test_a_job_that_never_finishes_ends_at_the_deadline_naming_its_task_id(service, sandbox):
    events = await collect(
        service, GenerationRequest(prompt="fox sandbox:never"), [("kie", "flux-kontext-pro")], timeout_s=0.4
    )
    done = final(events, "kie")
    assert done.state == "failed" and done.kind == "deadline"
    assert done.task_id and done.task_id in done.error


async def test_a_timed_out_job_is_resumed_by_task_id_without_a_second_submission(service, sandbox):
    sandbox.state.job_seconds = 0.8
    events = await collect(service, FOX, [("kie", "flux-kontext-max")], timeout_s=0.2)
    timed_out = final(events, "kie", "flux-kontext-max")
    assert timed_out.kind == "deadline"
    job = JobRef(provider="kie", model="flux-kontext-max", task_id=timed_out.task_id)
    resumed = [e async for e in service.resume(job)]
    assert resumed[-1].state == "succeeded"
    assert sandbox.state.count("kie", "create") == 1


async def test_unreadable_status_answers_fail_the_job_after_three_in_a_row(service, sandbox):
    sandbox.state.inject("kie", "status", "malformed", times=3)
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")])
    done = final(events, "kie")
    assert done.state == "failed" and done.kind == "unexpected_response"


async def test_one_unreadable_status_answer_is_tolerated(service, sandbox):
    sandbox.state.inject("kie", "status", "malformed")
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")])
    assert final(events, "kie").state == "succeeded"


async def test_plan_rejects_everything_before_sending_anything(service, sandbox):
    with pytest.raises(UnsupportedParameterError, match="aspect ratio 5:4"):
        service.plan(GenerationRequest(prompt="x", aspect_ratio="5:4"), [("kie", "flux-kontext-pro")]).raise_first()
    plan = service.plan(FOX, [("kie", "flux-kontext-pro"), ("nope", "flux-kontext-pro")])
    assert plan.targets == [("kie", "flux-kontext-pro")]
    (refused,) = plan.refused
    assert refused.target == ("nope", "flux-kontext-pro") and "Unknown provider 'nope'" in refused.reason
    with pytest.raises(ConfigError, match="Unknown provider 'nope'"):
        plan.raise_first()
    assert sandbox.state.count() == 0


async def test_a_missing_key_names_the_variable_to_set(settings):
    bare = settings.model_copy(update={"secrets": {}, "sandbox": False})
    with pytest.raises(ConfigError, match="set KIE_API_KEY"):
        GenerationService(bare).plan(FOX, [("kie", "flux-kontext-pro")]).raise_first()


async def test_server_keys_can_be_refused_and_a_visitor_key_used_instead(settings, sandbox):
    real = settings.model_copy(update={"sandbox": False})
    service = GenerationService(real)
    with pytest.raises(ConfigError, match="your own API key"):
        service.plan(FOX, [("kie", "flux-kontext-pro")], server_keys=False).raise_first()
    from pydantic import SecretStr

    sandbox.state.keys["kie"] = "visitor-key"
    events = await collect(
        service, FOX, [("kie", "flux-kontext-pro")], keys={"KIE_API_KEY": SecretStr("visitor-key")}, server_keys=False
    )
    assert final(events, "kie").state == "succeeded"
    await service.aclose()
    assert TEST_KEY != "visitor-key"


async def test_resume_reads_with_the_visitors_key_when_server_keys_are_refused(settings, sandbox):
    from pydantic import SecretStr

    service = GenerationService(settings.model_copy(update={"sandbox": False}))
    sandbox.state.keys["kie"] = "visitor-key"
    visitor = {"KIE_API_KEY": SecretStr("visitor-key")}
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")], keys=visitor, server_keys=False)
    job = JobRef(provider="kie", model="flux-kontext-pro", task_id=final(events, "kie").task_id)
    with pytest.raises(ConfigError, match="your own API key"):
        [e async for e in service.resume(job, server_keys=False)]
    resumed = [e async for e in service.resume(job, keys=visitor, server_keys=False)]
    assert resumed[-1].state == "succeeded"
    assert sandbox.state.count("kie", "create") == 1
    await service.aclose()


async def test_vary_seed_gives_each_target_its_own_seed(service):
    plans = service.plan(
        GenerationRequest(prompt="x", seed=7),
        [("kie", "flux-kontext-pro"), ("fluxapi", "flux-kontext-pro")],
        vary_seed=True,
    ).jobs
    assert [p.request.seed for p in plans] == [7, 8]
    assert plans[0].notes == ("seed ignored by KIE AI (its API has no seed)",)


class Crashing:
    """A history that stops writing once ``crash()`` is called: what a killed process leaves behind."""

    def __init__(self, store):
        self.store, self.crashed = store, False

    def crash(self):
        self.crashed = True

    async def record(self, event):
        if not self.crashed:
            await self.store.record(event)

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_after_a_crash_unfinished_jobs_are_resumed_from_history_and_never_resubmitted(
    settings, sandbox, open_store
):
    sandbox.state.job_seconds = 0.8
    targets = [("kie", "flux-kontext-pro"), ("fluxapi", "flux-kontext-pro"), ("runapi", "flux-kontext-max")]
    store = open_store()
    history = Crashing(store)
    first = GenerationService(settings, history=history)
    events = first.run(first.plan(FOX, targets))
    submitted = set()
    async for event in events:  # "crash" once every job has its task id
        if event.task_id:
            submitted.add(event.key)
        if len(submitted) == len(targets):
            history.crash()
            break
    await events.aclose()
    await first.aclose()
    assert len(await store.unfinished_jobs()) == 3

    second = GenerationService(settings, history=store)
    assert await second.resume_unfinished() == 3
    await second.aclose()
    assert await store.unfinished_jobs() == []
    [run] = await store.list_runs()
    assert run.outcome == "succeeded"
    assert sandbox.state.count(stage="create") == 3
    await store.aclose()


async def test_a_stopped_run_is_kept_as_stopped_with_its_task_ids_and_is_not_resumed_at_start(
    settings, sandbox, open_store
):
    sandbox.state.job_seconds = 5
    store = open_store()
    service = GenerationService(settings, history=store)
    events = service.run(service.plan(FOX, [("kie", "flux-kontext-pro"), ("fluxapi", "flux-kontext-pro")]))
    submitted = set()
    async for event in events:
        submitted |= {event.key} if event.task_id else set()
        if len(submitted) == 2:
            break
    await events.aclose()  # what Stop does
    [run] = await store.list_runs()
    assert run.outcome == "stopped"
    record = await store.get_run(run.run_id)
    assert [job.state for job in record.jobs] == ["stopped", "stopped"]
    assert all(job.task_id and job.is_resumable for job in record.jobs)
    assert await service.resume_unfinished() == 0, "a run the visitor stopped is not resumed behind their back"
    await service.aclose()
    await store.aclose()


async def test_a_create_on_its_way_when_the_run_is_stopped_still_keeps_its_task_id(settings, sandbox, open_store):
    import asyncio

    store = open_store()
    service = GenerationService(settings, history=store)
    events = service.run(service.plan(FOX, [("kie", "flux-kontext-pro")]))
    assert (await anext(events)).state == "queued"  # the create is being sent now
    await asyncio.sleep(0)
    await events.aclose()
    [run] = await store.list_runs()
    [job] = (await store.get_run(run.run_id)).jobs
    assert sandbox.state.count("kie", "create") == 1
    assert job.state == "stopped" and job.task_id in sandbox.state.jobs, "the paid job can still be found"
    await service.aclose()
    await store.aclose()


async def test_jobs_that_never_got_a_task_id_are_marked_failed_at_start(settings, open_store):
    store = open_store()
    await store.start_run("r1", FOX, [("kie", "flux-kontext-pro")], kind="generate")
    service = GenerationService(settings, history=store)
    assert await service.resume_unfinished() == 0
    [job] = (await store.get_run("r1")).jobs
    assert job.state == "failed" and "not tracked" in job.error
    await store.aclose()


LOCAL_URLS = ["http://127.0.0.1:9/cat.png", "http://169.254.169.254/latest/meta-data", "http://localhost/cat.png"]


@pytest.mark.parametrize("url", LOCAL_URLS)
def test_a_private_input_url_for_a_hosted_provider_is_refused_before_anything_is_sent(url):
    from pydantic import SecretStr

    from playground.models import InputImage
    from playground.settings import Settings

    real = Settings(secrets={"KIE_API_KEY": SecretStr("k")})  # the provider's own, public, base URL
    edit = GenerationRequest(prompt="make it snow", image=InputImage(url=url))
    with pytest.raises(InvalidInputError, match="private or local address .* KIE AI cannot reach"):
        GenerationService(real).plan(edit, [("kie", "flux-kontext-pro")]).raise_first()
    public = edit.model_copy(update={"image": InputImage(url="https://example.com/cat.png")})
    assert GenerationService(real).plan(public, [("kie", "flux-kontext-pro")]).jobs


def test_a_private_input_url_passes_when_allowed_or_when_the_provider_itself_is_local():
    from pydantic import SecretStr

    from playground.models import InputImage
    from playground.settings import Settings

    edit = GenerationRequest(prompt="make it snow", image=InputImage(url=LOCAL_URLS[0]))
    key = {"KIE_API_KEY": SecretStr("k")}
    allowed = Settings(secrets=key, allow_private_urls=True)
    local_stand_in = Settings(secrets=key, values={"KIE_BASE_URL": "http://127.0.0.1:8901"})
    for settings in (allowed, local_stand_in, Settings(secrets=key, sandbox=True)):
        assert GenerationService(settings).plan(edit, [("kie", "flux-kontext-pro")]).jobs


async def test_a_status_word_nobody_documented_is_shown_then_fails_the_job_after_three_reads_in_virtual_time(tmp_path):
    import httpx
    from pydantic import SecretStr

    from playground.settings import Settings

    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/generate"):
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": "t-42"}})
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": "t-42", "successFlag": 9}})

    settings = Settings(secrets={"KIE_API_KEY": SecretStr("k")}, out_dir=tmp_path, data_dir=tmp_path)
    service = GenerationService(settings, transport=httpx.MockTransport(answer), sleep=sleep, clock=lambda: now[0])
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")])
    await service.aclose()
    notes = [e.message for e in events if "not in its documented list; still waiting" in e.message]
    assert notes == ["KIE AI answered status 'successFlag 9', which is not in its documented list; still waiting."]
    failed = final(events, "kie")
    assert failed.state == "failed" and failed.kind == "job_failed" and failed.code == "unknown_status"
    assert "t-42" in failed.error and "3 times in a row" in failed.error
    assert now[0] == pytest.approx(2.0 + 3.0 + 3.0), "three documented-schedule reads, not the 300 s deadline"


async def test_a_slow_history_write_does_not_push_the_status_reads_later_in_virtual_time(tmp_path):
    import httpx
    from pydantic import SecretStr

    from playground.history import SqliteHistory
    from playground.settings import Settings

    now, reads = [0.0], []

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    class SlowToKeep(Crashing):
        async def record(self, event):
            if event.state == "running":
                await sleep(1.5)  # keeping "submitted as ..." takes a while (a busy or remote store)
            await self.store.record(event)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/generate"):
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": "t-7"}})
        reads.append(now[0])
        flag = 1 if now[0] >= 5.0 else 0
        data = {"taskId": "t-7", "successFlag": flag, "response": {"resultImageUrl": "https://cdn.example/r.png"}}
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": data})

    settings = Settings(secrets={"KIE_API_KEY": SecretStr("k")}, out_dir=tmp_path, data_dir=tmp_path)
    store = SqliteHistory.open(tmp_path)
    service = GenerationService(
        settings, history=SlowToKeep(store), transport=httpx.MockTransport(answer), sleep=sleep, clock=lambda: now[0]
    )
    await collect(service, FOX, [("kie", "flux-kontext-pro")])
    await service.aclose()
    await store.aclose()
    assert reads[:2] == [2.0, 5.0], "KIE's documented 2 s, then every 3 s, counted from the create's answer"


async def test_the_create_does_not_wait_for_history_to_keep_queued_again_in_virtual_time(tmp_path):
    import httpx
    from pydantic import SecretStr

    from playground.history import SqliteHistory
    from playground.settings import Settings

    now, creates, kept_before_create = [0.0], [], []
    png = png_bytes((8, 8))

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    class SlowToKeep(Crashing):
        async def record(self, event):
            await sleep(1.5)  # every write takes a while (a busy or remote store)
            await self.store.record(event)

    store = SqliteHistory.open(tmp_path)

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/generate"):
            creates.append(now[0])
            kept_before_create.append((await store.list_runs())[0].job_states)
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": "t-8"}})
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=png, headers={"content-type": "image/png"})
        data = {"taskId": "t-8", "successFlag": 1, "response": {"resultImageUrl": "https://cdn.example/r.png"}}
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": data})

    settings = Settings(secrets={"KIE_API_KEY": SecretStr("k")}, out_dir=tmp_path, data_dir=tmp_path)
    service = GenerationService(
        settings, history=SlowToKeep(store), transport=httpx.MockTransport(answer), sleep=sleep, clock=lambda: now[0]
    )
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")])
    await service.aclose()
    await store.aclose()
    assert events[0].state == "queued", events
    assert final(events, "kie", "flux-kontext-pro").state == "succeeded", final(events, "kie", "flux-kontext-pro")
    assert creates == [0.0], "the create went out at once, not 1.5 s later behind a history write"
    assert kept_before_create == [(("kie", "flux-kontext-pro", "queued"),)], "the run's start kept it as queued"


async def test_with_prices_set_no_job_costs_unknown_and_a_billed_price_wins(settings, sandbox):
    from playground.models import InputImage
    from playground.settings import parse_prices
    from tests.conftest import png_bytes

    priced = settings.model_copy(update={"prices": parse_prices("kie=0.025,fluxapi:pro=0.02,runapi=0.03,bfl=0.5")})
    service = GenerationService(priced)
    image = InputImage(url=f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes(), 'image/png')}")
    edit = GenerationRequest(prompt="make it snow", image=image)
    events = await collect(service, edit, [(name, "flux-kontext-pro") for name in service.specs])
    await service.aclose()
    results = {name: final(events, name).result for name in service.specs}
    assert all(r is not None and r.cost_usd is not None for r in results.values()), "no 'unknown' cost"
    assert (results["kie"].cost_usd, results["kie"].cost_source) == (0.025, "set by you in PLAYGROUND_PRICES")
    assert (results["runflow"].cost_usd, results["runflow"].cost_source) == (0.04, "billed by Runflow")
    bfl = results["bfl"]
    assert bfl.cost_billed and bfl.cost_source == "billed by Black Forest Labs", "its answer's credits beat our 0.5"
    assert results["apixo"].cost_source.startswith("https://"), "a list price names where it is published"


async def test_a_resumed_job_counts_its_latency_from_the_original_submit_and_says_it_was_resumed(service, sandbox):
    from datetime import UTC, datetime, timedelta

    sandbox.state.job_seconds = 0.6
    events = await collect(service, FOX, [("kie", "flux-kontext-pro")], timeout_s=0.1)
    task_id = final(events, "kie").task_id
    submitted = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    service.now = lambda: submitted + timedelta(seconds=80)  # the visitor comes back 80 s after submitting
    job = JobRef(provider="kie", model="flux-kontext-pro", task_id=task_id, submitted_at=submitted)
    resumed = [e async for e in service.resume(job)]
    assert all(e.resumed for e in resumed)
    assert resumed[-1].state == "succeeded" and 80 <= resumed[-1].result.latency_s < 90
    fresh = [e async for e in service.resume(job.model_copy(update={"submitted_at": None}))]
    assert fresh[-1].result.latency_s < 10, "without the original submit time it counts from the resume"


async def test_match_input_sends_each_provider_the_ratio_it_takes_nearest_the_input_and_says_which(service):
    from playground.models import InputImage
    from tests.conftest import png_bytes

    image = InputImage(content=png_bytes((800, 600)), mime_type="image/png", width=800, height=600)
    edit = GenerationRequest(prompt="snow", image=image, match_input_ratio=True)
    plan = service.plan(edit, [("kie", "flux-kontext-pro"), ("bfl", "flux-kontext-pro")])
    assert [job.request.aspect_ratio for job in plan.jobs] == ["4:3", "4:3"]
    assert plan.jobs[0].notes[0] == "aspect ratio 4:3 sent to KIE AI: the input's own ratio"
    wide = edit.model_copy(update={"image": image.model_copy(update={"width": 900, "height": 600})})
    kie, bfl = service.plan(wide, [("kie", "flux-kontext-pro"), ("bfl", "flux-kontext-pro")]).jobs
    assert (kie.request.aspect_ratio, bfl.request.aspect_ratio) == ("4:3", "3:2"), "each provider's own nearest"
    assert kie.notes[0] == "aspect ratio 4:3 sent to KIE AI: the nearest KIE AI takes to the input's 900×600"
    as_asked = service.plan(edit.model_copy(update={"match_input_ratio": False}), [("kie", "flux-kontext-pro")])
    assert as_asked.jobs[0].request.aspect_ratio is None, "without match input, nothing is added"


@pytest.mark.parametrize(
    ("size", "ratios", "expected"),
    [
        ((800, 600), ("16:9", "4:3", "1:1"), "4:3"),
        ((1000, 1000), ("16:9", "4:3", "1:1"), "1:1"),
        ((600, 800), ("16:9", "4:3", "1:1", "3:4"), "3:4"),
        ((1920, 1080), ("21:9", "16:9", "3:2"), "16:9"),
        ((300, 100), ("21:9", "16:9"), "21:9"),
    ],
)
def test_the_nearest_ratio_is_compared_on_shape(size, ratios, expected):
    from playground.capabilities import nearest_ratio

    assert nearest_ratio(*size, ratios) == expected
