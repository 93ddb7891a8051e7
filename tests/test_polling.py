"""Equal detection for every provider: the learned polling policy, the latency interval and its breakdown.

All in virtual time: the provider is a MockTransport whose job ends at a known moment of a fake clock.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from playground.history import SqliteHistory
from playground.models import GenerationRequest, JobResult, JobStatus, WireRequest
from playground.polling import MIN_READ_GAP_S, LearnedSchedule, PollingPolicy, duration_of, learned_schedule
from playground.providers import REGISTRY
from playground.service import GenerationService
from playground.settings import Settings
from playground.timing import Timer
from playground.watch import FixedSchedule, Reading
from tests.conftest import collect, final

FOX = GenerationRequest(prompt="a red fox")
DOCUMENTED = FixedSchedule(first_s=2.0, interval_s=3.0)


def result(latency_s: float, low_s: float, submit_s: float = 0.0) -> JobResult:
    return JobResult(
        path="x.jpg",
        image_url="https://x/y.jpg",
        mime_type="image/jpeg",
        width=1,
        height=1,
        size_bytes=1,
        latency_s=latency_s,
        latency_low_s=low_s,
        breakdown={"submit": submit_s},
        cost_usd=None,
        cost_source=None,
        sent=WireRequest(method="POST", url="https://x"),
    )


# --- the schedule -----------------------------------------------------------------------------------


def around(*seconds: float, width: float = 0.4) -> list[tuple[float, float]]:
    """Jobs that were measured to finish within ``width`` before each of ``seconds``."""
    return [(s - width, s) for s in seconds]


def test_with_too_few_finished_jobs_the_documented_schedule_applies():
    assert learned_schedule(around(8.0, 8.2, 7.9, 8.1), DOCUMENTED) is DOCUMENTED


def test_with_history_it_sleeps_until_a_job_can_be_done_then_reads_densely_then_backs_off():
    schedule = learned_schedule(around(8.2, 8.4, 8.5, 8.3, 8.4), DOCUMENTED)
    assert isinstance(schedule, LearnedSchedule)
    assert schedule.early_s == pytest.approx(7.8 * 0.9) and schedule.late_s == pytest.approx(8.5 * 1.1)
    assert schedule.delay_s(0, 0.0) == pytest.approx(7.02), "no read while no job of this kind was ever done"
    assert schedule.delay_s(1, 7.5) == MIN_READ_GAP_S, "twice a second while it plausibly is done"
    assert schedule.delay_s(5, 9.5) == MIN_READ_GAP_S
    assert schedule.delay_s(9, 14.0) == pytest.approx((14.0 - 8.5 * 1.1) * 0.5), "overdue: the gap grows"
    assert schedule.delay_s(12, 60.0) == DOCUMENTED.interval_s, "and stops at the documented interval"


def test_the_tails_come_from_percentiles_once_there_are_many_jobs():
    durations = around(*([8.0] * 98 + [1.0, 40.0]))  # one freak each way
    schedule = learned_schedule(durations, DOCUMENTED)
    assert isinstance(schedule, LearnedSchedule)
    assert 6.0 < schedule.early_s < 8.0 and 8.0 < schedule.late_s < 10.0


def test_precise_measurements_win_over_coarse_ones_and_a_job_done_at_its_first_read_says_nothing():
    coarse = [(8.0, 11.0)] * 5  # seen with the documented 3 s reads
    precise = around(8.2, 8.3, 8.2, 8.4, 8.3)
    schedule = learned_schedule([*coarse, *precise, (0.0, 6.0)], DOCUMENTED)
    assert schedule.early_s == pytest.approx(7.8 * 0.9) and schedule.late_s == pytest.approx(8.4 * 1.1)
    only_coarse = learned_schedule([*coarse, (0.0, 6.0)], DOCUMENTED)
    assert only_coarse.early_s == pytest.approx(8.0 * 0.9) and only_coarse.late_s == pytest.approx(11.0 * 1.1)


def test_no_read_ever_comes_sooner_than_half_a_second_after_the_last():
    schedule = learned_schedule(around(0.3, 0.3, 0.35, 0.3, 0.4, width=0.1), DOCUMENTED)
    elapsed, reads, gaps = 0.0, 0, []
    while elapsed < 20:
        delay = schedule.delay_s(reads, elapsed)
        gaps.append(delay)
        elapsed += delay
        reads += 1
    assert min(gaps[1:]) >= MIN_READ_GAP_S


def test_a_jobs_duration_is_its_latency_interval_less_the_create_round_trip():
    assert duration_of(result(8.4, 8.0, submit_s=0.2)) == pytest.approx((7.8, 8.2))


def test_an_operator_fixed_interval_wins():
    policy = PollingPolicy(None, fixed_interval_s=0.05)
    assert policy.schedule(REGISTRY["kie"], "flux-kontext-pro") == FixedSchedule(0.05, 0.05)


async def test_the_policy_learns_from_the_history_once_and_from_every_job_after(tmp_path):
    class Stored:
        calls = 0

        async def results(self, provider, model, *, limit=100):
            Stored.calls += 1
            return [result(8.0 + i / 10, 7.8 + i / 10) for i in range(6)]

    policy = PollingPolicy(Stored())
    await policy.prepare([("kie", "flux-kontext-pro")])
    await policy.prepare([("kie", "flux-kontext-pro")])
    assert Stored.calls == 1
    assert isinstance(policy.schedule(REGISTRY["kie"], "flux-kontext-pro"), LearnedSchedule)
    assert policy.schedule(REGISTRY["kie"], "flux-kontext-max") == FixedSchedule(2.0, 3.0), "per model"


# --- the interval and the breakdown ------------------------------------------------------------------


def reading(state: str, sent_at: float, received_at: float, via: str = "poll") -> Reading:
    return Reading(JobStatus(state=state), sent_at, received_at, via=via)  # type: ignore[arg-type]


def test_the_latency_is_the_first_done_read_with_the_last_not_done_read_as_its_error_bar():
    timer = Timer(started_at=100.0)
    timer.submitting(100.0)
    timer.created(100.5, 100.7)  # 0.5 s of upload, a 0.2 s create
    timer.waiting(100.7)
    for read in (reading("queued", 102.0, 102.1), reading("running", 104.0, 104.1), reading("running", 108.0, 108.1)):
        timer.saw(read)
    timer.saw(reading("succeeded", 108.5, 108.6))
    timer.downloaded(0.3)
    measured = timer.measured()
    assert measured["latency_s"] == pytest.approx(8.1) and measured["latency_low_s"] == pytest.approx(7.5)
    assert measured["detected_via"] == "poll"
    parts = measured["breakdown"]
    assert parts["upload"] == pytest.approx(0.5) and parts["submit"] == pytest.approx(0.2)
    assert parts["queued"] == pytest.approx(103.05 - 100.7) and parts["download"] == pytest.approx(0.3)
    assert parts["generating"] == pytest.approx((108.0 + 108.6) / 2 - 103.05)


def test_a_callback_is_an_exact_end():
    timer = Timer(started_at=0.0)
    timer.created(0.0, 0.1)
    timer.saw(reading("succeeded", 9.3, 9.3, via="callback"))
    measured = timer.measured()
    assert (measured["latency_s"], measured["latency_low_s"], measured["detected_via"]) == (9.3, 9.3, "callback")


# --- end to end in virtual time ----------------------------------------------------------------------


class Provider:
    """KIE's protocol on a MockTransport: every job takes ``job_s`` of the virtual clock; reads are counted."""

    def __init__(self, job_s: float) -> None:
        self.now, self.job_s = 0.0, job_s
        self.created: dict[str, float] = {}
        self.reads = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/generate"):
            task = f"t{len(self.created)}"
            self.created[task] = self.now
            return httpx.Response(200, json={"code": 200, "msg": "ok", "data": {"taskId": task}})
        if request.url.host == "img.example":
            return httpx.Response(200, content=_png(), headers={"content-type": "image/png"})
        self.reads += 1
        task = request.url.params["taskId"]
        done = self.now - self.created[task] >= self.job_s
        data = {"taskId": task, "successFlag": 1 if done else 0}
        if done:
            data["response"] = {"resultImageUrl": "https://img.example/r.png"}
        return httpx.Response(200, json={"code": 200, "msg": "ok", "data": data})


def _png() -> bytes:
    from tests.conftest import png_bytes

    return png_bytes()


async def test_after_a_few_runs_the_job_is_seen_done_within_half_a_second_with_fewer_reads(tmp_path):
    provider = Provider(job_s=8.2)
    settings = Settings(secrets={"KIE_API_KEY": SecretStr("k")}, out_dir=tmp_path / "out", data_dir=tmp_path)
    history = SqliteHistory.open(tmp_path / "data")
    service = GenerationService(
        settings,
        transport=httpx.MockTransport(provider.answer),
        sleep=provider.sleep,
        clock=provider.clock,
        history=history,
    )
    first = final(await collect(service, FOX, [("kie", "flux-kontext-pro")]), "kie").result
    assert first.latency_s == pytest.approx(11.0) and first.latency_low_s == pytest.approx(8.0), (
        "documented: 2, 5, 8, 11"
    )
    for _ in range(5):
        await collect(service, FOX, [("kie", "flux-kontext-pro")])
    provider.reads = 0
    learned = final(await collect(service, FOX, [("kie", "flux-kontext-pro")]), "kie").result
    await service.aclose()
    await history.aclose()
    assert 8.2 <= learned.latency_s <= 8.2 + MIN_READ_GAP_S and learned.latency_error_s <= MIN_READ_GAP_S
    assert provider.reads <= 4, "the first read waits until a job like this can be done"


async def test_the_interval_and_breakdown_reach_the_history_and_the_json_event(tmp_path, capsys):
    from playground.cli import event_json

    provider = Provider(job_s=3.0)
    settings = Settings(secrets={"KIE_API_KEY": SecretStr("k")}, out_dir=tmp_path / "out", data_dir=tmp_path)
    history = SqliteHistory.open(tmp_path / "data")
    service = GenerationService(
        settings,
        transport=httpx.MockTransport(provider.answer),
        sleep=provider.sleep,
        clock=provider.clock,
        history=history,
    )
    done = final(await collect(service, FOX, [("kie", "flux-kontext-pro")]), "kie")
    await service.aclose()
    (job,) = (await history.get_run(done.run_id)).jobs
    await history.aclose()
    assert job.result.latency_low_s == done.result.latency_low_s and job.result.breakdown == done.result.breakdown
    line = event_json(done)
    assert line["latency_s"] == done.result.latency_s and line["latency_low_s"] == done.result.latency_low_s
    assert set(line["breakdown"]) >= {"submit", "generating", "download"}


async def test_reads_stay_inside_a_documented_requests_per_minute_limit():
    from playground.ratelimit import SlidingWindow

    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    window = SlidingWindow(3, clock=lambda: now[0], sleep=sleep, window_s=60.0)
    stamps = []
    for _ in range(7):
        await window.acquire()
        stamps.append(now[0])
    assert stamps == [0.0, 0.0, 0.0, 60.0, 60.0, 60.0, 120.0], "a burst within the minute, then one minute later"


def test_the_providers_that_document_a_request_limit_carry_it():
    assert REGISTRY["replicate"].max_reads_per_minute == 3000 and REGISTRY["apixo"].max_reads_per_minute == 10000
