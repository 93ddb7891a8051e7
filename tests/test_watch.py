"""Waiting for a job in virtual time: schedules, deadline, callbacks, unreadable and unknown statuses.

Nothing here sleeps: the clock is a number the fake sleep moves forward.
"""

from __future__ import annotations

import logging

import pytest

from playground.errors import JobFailedError, JobTimeoutError, UnexpectedResponseError
from playground.models import JobStatus
from playground.watch import FixedSchedule, Reading, WatchedJob, watch

RUNNING = JobStatus(state="running")
DONE = JobStatus(state="succeeded", image_urls=("https://x/y.png",))


class VirtualTime:
    """A clock and a sleep that moves it; ``wake_at`` cuts a sleep short, as a callback delivery would."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.wake_at: float | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        target = self.now + seconds
        if self.wake_at is not None and self.now <= self.wake_at < target:
            target, self.wake_at = self.wake_at, None
        self.now = target


class Provider:
    """Answers status reads from a script (a status, None for 'unavailable', or an exception); notes read times."""

    def __init__(self, time: VirtualTime, answers: list[object], *, takes_s: float = 0.0) -> None:
        self.time, self.answers, self.takes_s = time, list(answers), takes_s
        self.read_at: list[float] = []

    async def read(self) -> JobStatus | None:
        self.read_at.append(self.time.now)
        self.time.now += self.takes_s
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]


def job(time: VirtualTime, timeout_s: float = 60.0) -> WatchedJob:
    return WatchedJob("kie", "KIE AI", "task-7", started_at=time.now, timeout_s=timeout_s)


async def readings(time, provider, schedule, **kw) -> list[Reading]:
    return [
        r
        async for r in watch(
            job(time, **kw.pop("job", {})), provider.read, schedule, clock=time.clock, sleep=time.sleep, **kw
        )
    ]


async def test_reads_on_the_schedule_until_the_job_is_done():
    time = VirtualTime()
    provider = Provider(time, [RUNNING, RUNNING, DONE])
    seen = await readings(time, provider, FixedSchedule(first_s=2.0, interval_s=3.0))
    assert [r - 100 for r in provider.read_at] == [2.0, 5.0, 8.0]
    assert [r.status.state for r in seen] == ["running", "running", "succeeded"]


async def test_each_reading_says_when_the_read_was_sent_and_answered():
    time = VirtualTime()
    provider = Provider(time, [RUNNING, DONE], takes_s=0.25)
    seen = await readings(time, provider, FixedSchedule(1.0, 1.0))
    assert [(r.sent_at - 100, r.received_at - 100) for r in seen] == [(1.0, 1.25), (2.25, 2.5)]


async def test_the_deadline_ends_the_wait_with_the_task_id_and_how_to_resume():
    time = VirtualTime()
    provider = Provider(time, [RUNNING])
    with pytest.raises(JobTimeoutError) as caught:
        await readings(time, provider, FixedSchedule(2.0, 3.0), job={"timeout_s": 10.0})
    assert [r - 100 for r in provider.read_at] == [2.0, 5.0, 8.0, 10.0], "the last wait is cut to the deadline"
    assert "task-7" in str(caught.value) and "within 10 s" in str(caught.value) and "Resume" in str(caught.value)
    assert caught.value.task_id == "task-7"


async def test_a_tiny_deadline_still_reads_once_before_giving_up():
    time = VirtualTime()
    provider = Provider(time, [DONE])
    seen = await readings(time, provider, FixedSchedule(5.0, 5.0), job={"timeout_s": 0.1})
    assert seen[-1].status == DONE and [r - 100 for r in provider.read_at] == [pytest.approx(0.1)]


async def test_an_unavailable_read_is_asked_again_later():
    time = VirtualTime()
    provider = Provider(time, [None, None, DONE])
    seen = await readings(time, provider, FixedSchedule(1.0, 1.0))
    assert [r.status for r in seen] == [None, None, DONE]


async def test_two_unreadable_answers_are_weather_but_three_in_a_row_are_a_broken_api():
    time = VirtualTime()
    garbled = UnexpectedResponseError("KIE AI answered with something that is not a JSON object: '<html>'.")
    fine = await readings(time, Provider(time, [garbled, garbled, RUNNING, garbled, DONE]), FixedSchedule(1, 1))
    assert fine[-1].status == DONE
    with pytest.raises(UnexpectedResponseError):
        await readings(time, Provider(time, [garbled, garbled, garbled, DONE]), FixedSchedule(1, 1))


async def test_an_unknown_status_word_is_said_once_and_logged_once_with_the_raw_answer(caplog):
    time = VirtualTime()
    odd = JobStatus(state="running", unknown="successFlag 7", raw={"successFlag": 7})
    provider = Provider(time, [odd, odd, RUNNING, odd, DONE])
    with caplog.at_level(logging.WARNING, logger="playground.watch"):
        seen = await readings(time, provider, FixedSchedule(1, 1))
    assert [r.new_unknown for r in seen] == [True, False, False, False, False]
    (logged,) = caplog.records
    assert "successFlag 7" in logged.getMessage() and "task-7" in logged.getMessage()
    assert "{'successFlag': 7}" in logged.getMessage()


async def test_a_status_that_stays_unknown_for_three_reads_fails_with_the_word_and_the_task_id():
    time = VirtualTime()
    odd = JobStatus(state="running", unknown="Finished!", raw={"status": "Finished!"})
    provider = Provider(time, [odd])
    with pytest.raises(JobFailedError) as caught:
        await readings(time, provider, FixedSchedule(3.0, 3.0), job={"timeout_s": 300.0})
    assert len(provider.read_at) == 3 and time.now - 100 == pytest.approx(9.0), "not the 300 s deadline"
    message = str(caught.value)
    assert "'Finished!'" in message and "task-7" in message and "not in its documented list" in message
    assert caught.value.code == "unknown_status" and caught.value.task_id == "task-7"


async def test_a_verified_callback_ends_the_wait_without_a_status_read():
    time = VirtualTime()
    provider = Provider(time, [RUNNING])
    time.wake_at = 104.2  # the delivery arrives 4.2 s in
    delivered: list[JobStatus] = []
    schedule = FixedSchedule(15.0, 15.0)  # the safety net

    async def nap(seconds: float) -> None:
        await time.sleep(seconds)
        if time.now == pytest.approx(104.2):
            delivered.append(DONE)

    seen = [
        r
        async for r in watch(
            job(time),
            provider.read,
            schedule,
            clock=time.clock,
            sleep=nap,
            delivered=lambda: delivered[0] if delivered else None,
        )
    ]
    assert provider.read_at == [] and seen[-1].via == "callback" and seen[-1].received_at == pytest.approx(104.2)


async def test_an_unverified_nudge_makes_the_next_read_happen_at_once():
    time = VirtualTime()
    provider = Provider(time, [DONE])
    time.wake_at = 101.5
    seen = await readings(time, provider, FixedSchedule(15.0, 15.0))
    assert [r - 100 for r in provider.read_at] == [pytest.approx(1.5)] and seen[-1].via == "poll"
