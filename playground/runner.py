"""One run: its jobs in parallel tasks, each submitted once, waited for (polls and callbacks), downloaded.

A Run gets everything it needs in a RunContext (client, clock, sleep, inbox, recorder, hosting, schedules),
so it never reaches into the service. Waiting is ``watch()``; this module turns readings into events.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from playground.errors import (
    JobCanceledError,
    JobFailedError,
    JobModeratedError,
    PlaygroundError,
    ProviderError,
    ResultImageError,
    UnexpectedResponseError,
)
from playground.http import HttpClient
from playground.images import EXTENSIONS, RESULT_FORMATS, sniff
from playground.inbox import Inbox, Waiter
from playground.models import (
    Events,
    GenerationRequest,
    JobEvent,
    JobRef,
    JobResult,
    JobState,
    JobStatus,
    Price,
    Submission,
    WireRequest,
)
from playground.outputs import result_file
from playground.providers import Provider, ProviderSpec
from playground.watch import Clock, FixedSchedule, Reading, Schedule, Sleep, WatchedJob, unknown_status_note, watch

log = logging.getLogger(__name__)

RUNNING_EVENT_EVERY_S = 1.0  # at most one "running" event per job per second
CALLBACK_SAFETY_POLL_S = 15.0  # with callbacks on, status reads are only a safety net

Recorder = Callable[[JobEvent], Awaitable[None]]
"""Keeps an event (in history); must not raise."""
Hosting = Callable[[ProviderSpec, GenerationRequest], GenerationRequest]
"""The request as a provider receives it: a local input replaced by a hosted URL where it needs one."""


@dataclass(frozen=True)
class RunContext:
    """What a run needs, given explicitly: where to send, how time passes, where events go."""

    client: httpx.AsyncClient
    clock: Clock
    sleep: Sleep
    inbox: Inbox
    record: Recorder
    hosting: Hosting
    schedule: Callable[[ProviderSpec, str], Schedule]
    price: Callable[[ProviderSpec, str], Price | None]
    callbacks: bool = False


@dataclass(frozen=True)
class PlannedJob:
    """One (provider, model) job that passed every check and is ready to submit."""

    spec: ProviderSpec
    provider: Provider
    request: GenerationRequest
    notes: tuple[str, ...]
    callback_url: str | None = None


class Run:
    """One click: jobs sharing a run id, an output folder and an event queue."""

    def __init__(self, context: RunContext, run_id: str, *, timeout_s: float, out_dir: Path):
        self.context = context
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.out_dir = out_dir / run_id
        self.queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()

    async def stream(self, jobs: Sequence[Awaitable[None]]) -> Events:
        """Yield events as jobs produce them; closing the stream stops the jobs still waiting (as 'stopped')."""
        tasks = [asyncio.ensure_future(job) for job in jobs]
        remaining = len(tasks)
        try:
            while remaining:
                event = await self.queue.get()
                if event is None:
                    remaining -= 1
                else:
                    yield event
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def job(self, plan: PlannedJob) -> None:
        tracker = Tracker(self, plan.spec, plan.request.model, plan.notes)
        await self._guard(tracker, self._submit_and_follow(tracker, plan))

    async def resume_job(self, spec: ProviderSpec, provider: Provider, job: JobRef, *, earlier_s: float = 0.0) -> None:
        """Wait again for a submitted job; ``earlier_s``: how long ago it was first submitted (its latency counts)."""
        tracker = Tracker(self, spec, job.model, ())
        tracker.task_id, tracker.urls = job.task_id, dict(job.urls)
        tracker.started -= max(0.0, earlier_s)
        tracker.resumed = True
        await self._guard(tracker, self._follow(tracker, spec, provider, job, uses_callback=False))

    async def _guard(self, tracker: Tracker, work: Awaitable[None]) -> None:
        try:
            await work
        except PlaygroundError as exc:
            await tracker.fail(exc)
        except asyncio.CancelledError:
            await tracker.stop()
            raise
        except Exception as exc:  # a bug in one adapter must not take the other panels down
            log.exception("%s: unexpected error", tracker.spec.name)
            await tracker.fail(UnexpectedResponseError(f"{tracker.spec.label}: internal error ({type(exc).__name__})."))
        finally:
            self.queue.put_nowait(None)

    async def _submit_and_follow(self, tracker: Tracker, plan: PlannedJob) -> None:
        await tracker.emit("queued", "queued")
        request = self.context.hosting(plan.spec, plan.request)
        submission = await _finish_even_if_stopped(
            plan.provider.submit(request, callback_url=plan.callback_url), tracker
        )
        tracker.task_id, tracker.sent, tracker.urls = submission.job.task_id, submission.sent, dict(submission.job.urls)
        await self._follow(
            tracker, plan.spec, plan.provider, submission.job, uses_callback=plan.callback_url is not None
        )

    async def _follow(
        self, tracker: Tracker, spec: ProviderSpec, provider: Provider, job: JobRef, *, uses_callback: bool
    ) -> None:
        await tracker.emit("running", f"submitted as {job.task_id}")
        inbox = self.context.inbox
        waiter = inbox.register(spec.name, job.task_id)
        try:
            status = await self._wait(tracker, spec, provider, job, waiter, uses_callback=uses_callback)
        finally:
            inbox.unregister(spec.name, job.task_id)
        url = outcome(spec, job, status)
        result = await self._keep(tracker, spec, job, url)
        await tracker.emit("succeeded", f"done in {result.latency_s:.1f} s", result=result)

    async def _wait(
        self,
        tracker: Tracker,
        spec: ProviderSpec,
        provider: Provider,
        job: JobRef,
        waiter: Waiter,
        *,
        uses_callback: bool,
    ) -> JobStatus:
        context = self.context
        schedule = context.schedule(spec, job.model)
        if uses_callback:  # this job's end is delivered to us: status reads are only a safety net
            safety = max(CALLBACK_SAFETY_POLL_S, schedule.delay_s(1, 0.0))
            schedule = FixedSchedule(safety, safety)
        # With a public address any job may get a delivery (a nudge, say), so every wait can be cut short.
        sleep = waiter.nap if context.callbacks else context.sleep
        watched = WatchedJob(spec.name, spec.label, job.task_id, context.clock(), self.timeout_s)
        readings = watch(
            watched,
            lambda: read_status(provider, job),
            schedule,
            clock=context.clock,
            sleep=sleep,
            delivered=waiter.delivered,
        )
        last: Reading | None = None
        async for reading in readings:
            last = reading
            await tracker.on_reading(reading)
        assert last is not None and last.status is not None
        return last.status

    async def _keep(self, tracker: Tracker, spec: ProviderSpec, job: JobRef, url: str) -> JobResult:
        content = await download(self.context, spec, job, url)
        found = sniff(content)
        if found is None or found[0] not in RESULT_FORMATS:
            raise ResultImageError(
                f"{spec.label} returned a result that is not an image ({url[:80]}).",
                provider=spec.name,
                task_id=job.task_id,
            )
        fmt, width, height = found
        mime = RESULT_FORMATS[fmt]
        path = result_file(self.out_dir, spec.name, job.model, EXTENSIONS[mime])
        await asyncio.to_thread(write_atomically, path, content)
        price = self.context.price(spec, job.model)
        return JobResult(
            path=str(path),
            image_url=url if not url.startswith("data:") else "data: URI",
            mime_type=mime,
            width=width,
            height=height,
            size_bytes=len(content),
            latency_s=round(tracker.elapsed(), 3),
            cost_usd=price.usd if price else None,
            cost_source=price.source if price else None,
            sent=tracker.sent or WireRequest(method="GET", url="(resumed)"),
        )


async def _finish_even_if_stopped(submitting: Awaitable[Submission], tracker: Tracker) -> Submission:
    """Let a create that is on its way finish even if the run is stopped meanwhile, so its task id is kept.

    A create POST that was sent may have started a paid job: stopping must not lose the id that finds it again.
    """
    task = asyncio.ensure_future(submitting)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            submission = await task
        except Exception:  # the create itself failed: there is nothing to find again
            raise asyncio.CancelledError from None
        tracker.task_id, tracker.sent = submission.job.task_id, submission.sent
        raise


async def read_status(provider: Provider, job: JobRef) -> JobStatus | None:
    """One status read; a transient failure (after the HTTP layer's retries) means 'ask again later'."""
    try:
        return await provider.status(job)
    except ProviderError as exc:
        if not exc.is_retryable:
            raise
        log.info("%s: status of %s unavailable for now (%s)", job.provider, job.task_id, exc.code)
        return None


def outcome(spec: ProviderSpec, job: JobRef, status: JobStatus) -> str:
    """The result URL of a terminal status, or the JobError that explains why there is none."""
    reason = (status.error or "no reason given").strip().rstrip(".")
    common = {"provider": spec.name, "code": status.error_code, "task_id": job.task_id}
    if status.state == "succeeded":
        if not status.image_urls:
            raise ResultImageError(
                f"{spec.label} reported success for task {job.task_id} but gave no image URL.", **common
            )
        return status.image_urls[0]
    if status.state == "canceled":
        raise JobCanceledError(f"{spec.label} canceled task {job.task_id}: {reason}.", **common)
    if status.moderated:
        raise JobModeratedError(f"{spec.label} refused the job on content grounds: {reason}.", **common)
    raise JobFailedError(f"{spec.label} reports the job failed: {reason}.", **common)


async def download(context: RunContext, spec: ProviderSpec, job: JobRef, url: str) -> bytes:
    """The result's bytes, at once (URLs expire), with an unauthenticated client: hosts get no key."""
    if url.startswith("data:"):
        return base64.b64decode(url.split(",", 1)[1])
    http = HttpClient(context.client, provider=spec.name, label=f"{spec.label}'s image host", sleep=context.sleep)
    try:
        response = await http.fetch("GET", url)
    except ProviderError as exc:
        raise ResultImageError(
            f"The result of task {job.task_id} could not be downloaded: {exc}", provider=spec.name, task_id=job.task_id
        ) from exc
    return response.content


def write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(content)
    os.replace(tmp, path)


class Tracker:
    """Builds one job's events: same identity, elapsed time from submission; keeps state changes in history."""

    def __init__(self, run: Run, spec: ProviderSpec, model: str, notes: tuple[str, ...]):
        self.run = run
        self.spec = spec
        self.model = model
        self.notes = notes
        self.started = run.context.clock()
        self.task_id: str | None = None
        self.sent: WireRequest | None = None
        self.urls: dict[str, str] = {}
        self.last_running = 0.0
        self.state: JobState | None = None
        self.resumed = False

    def elapsed(self) -> float:
        return self.run.context.clock() - self.started

    async def on_reading(self, reading: Reading) -> None:
        """Say what a reading changed: an undocumented status word once, else 'running' once a second."""
        status = reading.status
        if status is None or status.is_terminal:
            return
        if reading.new_unknown and status.unknown is not None:
            await self.emit("running", unknown_status_note(self.spec.label, status.unknown), keep=True)
        elif self.elapsed() - self.last_running >= RUNNING_EVENT_EVERY_S:
            self.last_running = self.elapsed()
            await self.emit("running", f"running {self.last_running:.1f} s")

    async def emit(self, state: JobState, message: str, *, keep: bool = False, **extra: object) -> None:
        """Stream one event; history keeps it when the state changes (or ``keep``): not every running tick."""
        event = JobEvent(
            run_id=self.run.run_id,
            provider=self.spec.name,
            provider_label=self.spec.label,
            model=self.model,
            state=state,
            elapsed_s=round(self.elapsed(), 3),
            task_id=self.task_id,
            urls=self.urls,
            message=message,
            notes=self.notes,
            sent=self.sent,
            resumed=self.resumed,
            **extra,
        )
        if keep or state != self.state or state == "running" and message.startswith("submitted"):
            await self.run.context.record(event)
        self.state = state
        self.run.queue.put_nowait(event)

    async def fail(self, exc: PlaygroundError) -> None:
        state: JobState = "canceled" if isinstance(exc, JobCanceledError) else "failed"
        await self.emit(state, f"{state}: {exc}", error=str(exc), code=exc.code, kind=type(exc).default_code)

    async def stop(self) -> None:
        """The run was stopped before this job ended: keep it as stopped (resumable when it has a task id)."""
        if self.state in ("succeeded", "failed", "canceled", "stopped"):
            return
        where = f"task {self.task_id} may still finish" if self.task_id else "it was never submitted"
        await self.emit("stopped", f"stopped after {self.elapsed():.1f} s; {where}")
