"""Waiting for one job: status reads on a schedule, verified callbacks, a deadline, unknown status words.

``watch()`` is a pure async generator: the status read, the clock and the sleep are parameters, so every
schedule, the deadline and the unknown-status rule are tested in virtual time, without real seconds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from playground.errors import JobFailedError, JobTimeoutError, UnexpectedResponseError
from playground.models import JobStatus

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Read = Callable[[], Awaitable[JobStatus | None]]
"""One status read: the status, or None when it was unavailable for now (a transient error)."""

MAX_UNREADABLE_READS = 3  # a gateway page now and then is weather; three in a row is a broken API
MAX_UNKNOWN_READS = 3  # a status word the provider does not document, this many reads in a row: give up


class Schedule(Protocol):
    """When to read a job's status next."""

    def delay_s(self, reads: int, elapsed_s: float) -> float:
        """Seconds to wait before read number ``reads + 1``, ``elapsed_s`` after waiting started."""
        ...


@dataclass(frozen=True)
class FixedSchedule:
    """The first read ``first_s`` after waiting started, then one every ``interval_s``."""

    first_s: float
    interval_s: float

    def delay_s(self, reads: int, elapsed_s: float) -> float:
        return max(0.0, self.first_s - elapsed_s) if reads == 0 else self.interval_s


@dataclass(frozen=True)
class WatchedJob:
    """The job being waited for: what sentences about it name, when waiting started (clock time), for how long."""

    provider: str
    label: str
    task_id: str
    started_at: float
    timeout_s: float

    @property
    def deadline_at(self) -> float:
        return self.started_at + self.timeout_s


@dataclass(frozen=True)
class Reading:
    """One look at the job: what a status read or a verified callback said, and when (clock times).

    ``status`` is None when the read was unavailable for now. ``new_unknown`` marks the first reading that
    carries a status word the provider does not document (say it once).
    """

    status: JobStatus | None
    sent_at: float
    received_at: float
    via: Literal["poll", "callback"] = "poll"
    new_unknown: bool = False


def _no_callback() -> JobStatus | None:
    return None


async def watch(
    job: WatchedJob,
    read: Read,
    schedule: Schedule,
    *,
    clock: Clock,
    sleep: Sleep,
    delivered: Callable[[], JobStatus | None] = _no_callback,
) -> AsyncIterator[Reading]:
    """Yield every reading until a terminal one, which is yielded last.

    ``sleep`` may return early (a callback arrived): a verified terminal status from ``delivered()`` ends the
    watch without a read; an unverified nudge just makes the next read happen now. Raises JobTimeoutError when
    the deadline passes, and JobFailedError when the status stays unknown for MAX_UNKNOWN_READS reads.
    """
    reads = unreadable = unknown_in_a_row = 0
    said: set[str] = set()
    while True:
        now = clock()
        await sleep(max(0.0, min(schedule.delay_s(reads, now - job.started_at), job.deadline_at - now)))
        verified = delivered()
        if verified is not None and verified.is_terminal:
            moment = clock()
            yield Reading(verified, moment, moment, via="callback")
            return
        sent_at = clock()
        try:
            status = await read()
            unreadable = 0
        except UnexpectedResponseError:
            unreadable += 1
            if unreadable >= MAX_UNREADABLE_READS:
                raise
            status = None
        reads += 1
        received_at = clock()
        new_unknown = False
        if status is not None and status.unknown is not None:
            unknown_in_a_row += 1
            new_unknown = status.unknown not in said
            if new_unknown:
                said.add(status.unknown)
                log.warning(
                    "%s task %s: status %r is not documented; raw: %s",
                    job.provider,
                    job.task_id,
                    status.unknown,
                    status.raw,
                )
            if unknown_in_a_row >= MAX_UNKNOWN_READS:
                raise unknown_status_error(job, status.unknown, unknown_in_a_row)
        elif status is not None:
            unknown_in_a_row = 0
        yield Reading(status, sent_at, received_at, new_unknown=new_unknown)
        if status is not None and status.is_terminal:
            return
        if received_at >= job.deadline_at:
            raise deadline_error(job)


def unknown_status_note(label: str, word: str) -> str:
    """What a panel says while a job's status word is not one its provider documents."""
    return f"{label} answered status {word!r}, which is not in its documented list; still waiting."


def unknown_status_error(job: WatchedJob, word: str, reads: int) -> JobFailedError:
    return JobFailedError(
        f"{job.label} answered status {word!r} {reads} times in a row, which is not in its documented list, so "
        f"the playground stopped waiting for task {job.task_id}. If the provider finishes it later, resume it by "
        "that task id (nothing will be submitted again).",
        provider=job.provider,
        code="unknown_status",
        task_id=job.task_id,
    )


def deadline_error(job: WatchedJob) -> JobTimeoutError:
    return JobTimeoutError(
        f"{job.label} did not finish task {job.task_id} within {job.timeout_s:g} s; it may still be running. "
        f"Resume it by task id {job.task_id} (nothing will be submitted again).",
        provider=job.provider,
        task_id=job.task_id,
    )
