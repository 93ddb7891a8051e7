"""One run: its jobs in parallel tasks, each submitted once, waited for (polls and callbacks), downloaded.

A Run gets everything it needs in a RunContext (client, clock, sleep, inbox, recorder, hosting, schedules),
so it never reaches into the service. Waiting is ``watch()``; this module turns readings into events.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from playground.addresses import check_url
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
from playground.images import EXTENSIONS, MAX_RESULT_BYTES, RESULT_FORMATS, sniff
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
from playground.providers import Provider, ProviderSpec
from playground.storage import LocalStorage, Storage
from playground.timing import Timer
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
    pace: Callable[[ProviderSpec], Awaitable[None]]
    """Waits until one more status read keeps the provider inside its documented rate."""
    callbacks: bool = False
    storage: Storage | None = None  # where results are kept; None: files under the run's out_dir
    redact: Callable[[JobEvent], JobEvent] = lambda event: event  # keys a provider echoed: replaced everywhere
    downloads: Callable[[ProviderSpec], httpx.AsyncClient] | None = None  # the client for results (else client)


@dataclass(frozen=True)
class PlannedJob:
    """One (provider, model) job that passed every check and is ready to submit.

    ``http`` is the adapter's own client: it notes when the create was sent, where the latency starts.
    """

    spec: ProviderSpec
    provider: Provider
    request: GenerationRequest
    notes: tuple[str, ...]
    callback_url: str | None = None
    http: HttpClient | None = None
    check_input_url: bool = False  # resolve the input URL's name and refuse a private address before the create


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
        tracker.timer = Timer(tracker.started)
        if earlier_s > 0:  # the latency counts from the original create, as the history kept its time
            tracker.timer.create_sent = tracker.started
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
        # The run's start kept every target as queued already: waiting for history to say so again would only
        # hold the create back (under 1,000 jobs at once, by up to 0.5 s behind the others' writes).
        await tracker.emit("queued", "queued", kept=True)
        if plan.check_input_url and plan.request.image is not None and plan.request.image.url:
            await check_url(plan.request.image.url, allow_private=False, must_resolve=False)
        # Hosting writes the input once (a few ms); no await here, so a stop just after "queued" still finds the
        # create on its way, as it always has.
        request = self.context.hosting(plan.spec, plan.request)
        tracker.timer.submitting(self.context.clock())
        submitting = plan.provider.submit(request, callback_url=plan.callback_url)
        submission = await _finish_even_if_stopped(submitting, tracker)
        if plan.http is not None and plan.http.create_timing is not None:
            tracker.timer.created(*plan.http.create_timing)
        tracker.task_id, tracker.sent, tracker.urls = submission.job.task_id, submission.sent, dict(submission.job.urls)
        tracker.billed_usd = submission.billed_usd
        uses_callback = plan.callback_url is not None
        await self._follow(tracker, plan.spec, plan.provider, submission.job, uses_callback=uses_callback)

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
        result = await self._keep(tracker, spec, job, url, status)
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
        # The schedule counts from the create's answer, as the durations it learned from do (latency less the
        # create's round trip); keeping "submitted" in history first must not push the reads later.
        accepted = tracker.timer.create_answered
        watched = WatchedJob(
            spec.name, spec.label, job.task_id, context.clock() if accepted is None else accepted, self.timeout_s
        )

        async def read() -> JobStatus | None:
            await context.pace(spec)
            return await read_status(provider, job)

        readings = watch(
            watched,
            read,
            schedule,
            clock=context.clock,
            sleep=sleep,
            delivered=waiter.delivered,
        )
        tracker.timer.waiting(context.clock())
        last: Reading | None = None
        async for reading in readings:
            last = reading
            tracker.timer.saw(reading)
            await tracker.on_reading(reading)
        assert last is not None and last.status is not None
        return last.status

    async def _keep(self, tracker: Tracker, spec: ProviderSpec, job: JobRef, url: str, status: JobStatus) -> JobResult:
        started = self.context.clock()
        content = await download(self.context, spec, job, url)
        tracker.timer.downloaded(self.context.clock() - started)
        found = sniff(content)
        if found is None or found[0] not in RESULT_FORMATS:
            raise ResultImageError(
                f"{spec.label} returned a result that is not an image ({url[:80]}).",
                provider=spec.name,
                task_id=job.task_id,
            )
        fmt, width, height = found
        mime = RESULT_FORMATS[fmt]
        storage = self.context.storage or LocalStorage(self.out_dir.parent)
        kept = await storage.put(f"{self.run_id}/{spec.name}-{job.model}.{EXTENSIONS[mime]}", content, mime)
        billed = status.billed_usd if status.billed_usd is not None else tracker.billed_usd
        price = self.context.price(spec, job.model)
        measured = tracker.timer.measured()
        return JobResult(
            path=str(kept.path),
            stored=kept.ref if kept.ref != str(kept.path) else None,
            image_url=url if not url.startswith("data:") else "data: URI",
            mime_type=mime,
            width=width,
            height=height,
            size_bytes=len(content),
            cost_usd=billed if billed is not None else price.usd if price else None,
            cost_source=f"billed by {spec.label}" if billed is not None else price.source if price else None,
            cost_billed=billed is not None,
            cost_confirmed=billed is not None or price is None or price.confirmed,
            sent=tracker.sent or WireRequest(method="GET", url="(resumed)"),
            provider_timings=status.timings,
            **measured,
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
        encoded = url.split(",", 1)[-1]
        if len(encoded) > MAX_RESULT_BYTES * 4 // 3 + 4:
            raise ResultImageError(f"The result of task {job.task_id} is larger than the playground keeps.")
        return base64.b64decode(encoded)
    client = context.downloads(spec) if context.downloads is not None else context.client
    http = HttpClient(client, provider=spec.name, label=f"{spec.label}'s image host", sleep=context.sleep)
    try:
        response = await http.fetch("GET", url, max_bytes=MAX_RESULT_BYTES)
    except ProviderError as exc:
        raise ResultImageError(
            f"The result of task {job.task_id} could not be downloaded: {exc}", provider=spec.name, task_id=job.task_id
        ) from exc
    return response.content


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
        self.timer = Timer(self.started)
        self.billed_usd: float | None = None
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

    async def emit(
        self, state: JobState, message: str, *, keep: bool = False, kept: bool = False, **extra: object
    ) -> None:
        """Stream one event; history keeps it when the state changes (or ``keep``): not every running tick.

        ``kept``: history holds this state already (the run's start wrote it), so the event is only streamed.
        """
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
        event = self.run.context.redact(event)
        if not kept and (keep or state != self.state or state == "running" and message.startswith("submitted")):
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
