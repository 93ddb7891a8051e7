"""One run: its jobs in parallel tasks, each submitted once, waited for (polls and callbacks), downloaded."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from playground.errors import (
    JobCanceledError,
    JobFailedError,
    JobModeratedError,
    JobTimeoutError,
    PlaygroundError,
    ProviderError,
    ResultImageError,
    UnexpectedResponseError,
)
from playground.http import HttpClient
from playground.images import EXTENSIONS, RESULT_FORMATS, sniff
from playground.inbox import Waiter
from playground.models import GenerationRequest, JobEvent, JobRef, JobResult, JobState, JobStatus, ModelId, WireRequest
from playground.providers import Provider, ProviderSpec

if TYPE_CHECKING:
    from playground.service import GenerationService

log = logging.getLogger(__name__)

RUNNING_EVENT_EVERY_S = 1.0  # at most one "running" event per job per second
MAX_UNREADABLE_STATUSES = 3  # a gateway page now and then is weather; three in a row is a broken API
CALLBACK_SAFETY_POLL_S = 15.0  # with callbacks on, status reads are only a safety net


class HistorySink(Protocol):
    """Where events are kept (the history store); the runner only writes."""

    def record(self, event: JobEvent) -> None: ...


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

    def __init__(self, service: GenerationService, run_id: str, timeout_s: float | None, out_dir: Path | None):
        self.service = service
        self.run_id = run_id
        self.timeout_s = timeout_s or service.settings.job_timeout_s
        self.out_dir = (out_dir or service.settings.out_dir) / run_id
        self.queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()

    async def stream(self, jobs: Sequence[Awaitable[None]]) -> AsyncIterator[JobEvent]:
        """Yield events as jobs produce them; closing the stream cancels the jobs still waiting."""
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
        tracker.uses_callback = plan.callback_url is not None
        await self._guard(tracker, self._submit_and_follow(tracker, plan))

    async def resume_job(self, spec: ProviderSpec, provider: Provider, job: JobRef) -> None:
        tracker = Tracker(self, spec, job.model, ())
        tracker.task_id, tracker.urls = job.task_id, dict(job.urls)
        await self._guard(tracker, self._follow(tracker, spec, provider, job))

    async def _guard(self, tracker: Tracker, work: Awaitable[None]) -> None:
        try:
            await work
        except PlaygroundError as exc:
            tracker.fail(exc)
        except Exception as exc:  # a bug in one adapter must not take the other panels down
            log.exception("%s: unexpected error", tracker.spec.name)
            tracker.fail(UnexpectedResponseError(f"{tracker.spec.label}: internal error ({type(exc).__name__})."))
        finally:
            self.queue.put_nowait(None)

    async def _submit_and_follow(self, tracker: Tracker, plan: PlannedJob) -> None:
        tracker.emit("queued", "queued")
        request = self.service.hosted(plan.spec, plan.request)
        submission = await plan.provider.submit(request, callback_url=plan.callback_url)
        tracker.task_id, tracker.sent, tracker.urls = submission.job.task_id, submission.sent, dict(submission.job.urls)
        await self._follow(tracker, plan.spec, plan.provider, submission.job)

    async def _follow(self, tracker: Tracker, spec: ProviderSpec, provider: Provider, job: JobRef) -> None:
        tracker.emit("running", f"submitted as {job.task_id}")
        waiter = self.service.inbox.register(spec.name, job.task_id)
        try:
            status = await self._wait(tracker, spec, provider, job, waiter)
        finally:
            self.service.inbox.unregister(spec.name, job.task_id)
        url = outcome(spec, job, status)
        result = await self._keep(tracker, spec, job, url)
        tracker.emit("succeeded", f"done in {result.latency_s:.1f} s", result=result)

    async def _wait(
        self, tracker: Tracker, spec: ProviderSpec, provider: Provider, job: JobRef, waiter: Waiter
    ) -> JobStatus:
        clock = self.service._clock
        schedule = self.service.poll_schedule(spec)
        first, interval = schedule.first_s, schedule.interval_s
        if tracker.uses_callback:
            first = interval = max(CALLBACK_SAFETY_POLL_S, interval)
        deadline = tracker.started + self.timeout_s
        await self._nap(waiter, min(first, max(0.0, deadline - clock())))
        unreadable = 0
        while True:
            if waiter.status is not None and waiter.status.is_terminal:
                return waiter.status  # a verified callback: no status read needed
            try:
                status = await read_status(provider, job)
                unreadable = 0
            except UnexpectedResponseError:
                unreadable += 1
                if unreadable >= MAX_UNREADABLE_STATUSES:
                    raise
                status = None
            if status is not None and status.is_terminal:
                return status
            now = clock()
            if now >= deadline:
                raise JobTimeoutError(
                    f"{spec.label} did not finish task {job.task_id} within {self.timeout_s:g} s; it may still be "
                    f"running. Resume it by task id {job.task_id} (nothing will be submitted again).",
                    provider=spec.name,
                    task_id=job.task_id,
                )
            if status is not None and tracker.elapsed() - tracker.last_running >= RUNNING_EVENT_EVERY_S:
                tracker.last_running = tracker.elapsed()
                tracker.emit("running", f"running {tracker.last_running:.1f} s")
            await self._nap(waiter, min(interval, deadline - now))

    async def _nap(self, waiter: Waiter, seconds: float) -> None:
        if self.service.callbacks_enabled:
            await waiter.nap(seconds)
        else:
            await self.service._sleep(seconds)

    async def _keep(self, tracker: Tracker, spec: ProviderSpec, job: JobRef, url: str) -> JobResult:
        content = await download(self.service, spec, job, url)
        found = sniff(content)
        if found is None or found[0] not in RESULT_FORMATS:
            raise ResultImageError(
                f"{spec.label} returned a result that is not an image ({url[:80]}).",
                provider=spec.name,
                task_id=job.task_id,
            )
        fmt, width, height = found
        mime = RESULT_FORMATS[fmt]
        path = self.out_dir / f"{spec.name}-{job.model}.{EXTENSIONS[mime]}"
        write_atomically(path, content)
        price = spec.prices.get(job.model)
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
        raise JobModeratedError(
            f"{spec.label} refused the job on content grounds: {reason}. Rephrase the prompt or use another image.",
            **common,
        )
    raise JobFailedError(f"{spec.label} reports the job failed: {reason}.", **common)


async def download(service: GenerationService, spec: ProviderSpec, job: JobRef, url: str) -> bytes:
    """The result's bytes, at once (URLs expire), with an unauthenticated client: hosts get no key."""
    if url.startswith("data:"):
        return base64.b64decode(url.split(",", 1)[1])
    http = HttpClient(service.client, provider=spec.name, label=f"{spec.label}'s image host", sleep=service._sleep)
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
    """Builds one job's events: same identity, elapsed time from submission; records them in history."""

    def __init__(self, run: Run, spec: ProviderSpec, model: ModelId, notes: tuple[str, ...]):
        self.run = run
        self.spec = spec
        self.model = model
        self.notes = notes
        self.started = run.service._clock()
        self.task_id: str | None = None
        self.sent: WireRequest | None = None
        self.urls: dict[str, str] = {}
        self.last_running = 0.0
        self.uses_callback = False

    def elapsed(self) -> float:
        return self.run.service._clock() - self.started

    def emit(self, state: JobState, message: str, **extra: object) -> None:
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
            **extra,
        )
        self.run.service.keep(event)
        self.run.queue.put_nowait(event)

    def fail(self, exc: PlaygroundError) -> None:
        state: JobState = "canceled" if isinstance(exc, JobCanceledError) else "failed"
        self.emit(state, f"{state}: {exc}", error=str(exc), code=exc.code, kind=type(exc).default_code)


Keeper = Callable[[JobEvent], None]
