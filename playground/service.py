"""The generation service: validate, fan out to (provider, model) targets, wait, download, stream events."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from playground.capabilities import check_request
from playground.errors import (
    ConfigError,
    JobCanceledError,
    JobFailedError,
    JobModeratedError,
    JobTimeoutError,
    PlaygroundError,
    ProviderError,
    ResultImageError,
    UnexpectedResponseError,
)
from playground.http import HttpClient, Sleep, build_client
from playground.images import EXTENSIONS, RESULT_FORMATS, sniff
from playground.models import (
    GenerationRequest,
    JobEvent,
    JobRef,
    JobResult,
    JobState,
    JobStatus,
    ModelId,
    WireRequest,
)
from playground.providers import REGISTRY, Provider, ProviderSpec, get_spec, provider_config
from playground.providers.base import PollSchedule
from playground.settings import Settings

log = logging.getLogger(__name__)

RUNNING_EVENT_EVERY_S = 1.0  # at most one "running" event per job per second
MAX_UNREADABLE_STATUSES = 3  # a gateway page now and then is weather; three in a row is a broken API

Target = tuple[str, ModelId]
Emit = Callable[[JobEvent], None]


@dataclass(frozen=True)
class PlannedJob:
    """One (provider, model) job that passed every check and is ready to submit."""

    spec: ProviderSpec
    provider: Provider
    request: GenerationRequest
    notes: tuple[str, ...]


class GenerationService:
    """Submit one request to many (provider, model) targets at once and stream what happens."""

    def __init__(
        self,
        settings: Settings,
        *,
        specs: Mapping[str, ProviderSpec] = REGISTRY,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.specs = dict(specs)
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared HTTP client, created on first use (on the running event loop)."""
        if self._client is None:
            self._client = build_client(self.settings.http_timeout_s, self._transport)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def is_configured(
        self, name: str, keys: Mapping[str, SecretStr] | None = None, *, server_keys: bool = True
    ) -> bool:
        """Whether ``name`` has a key: the visitor's (``keys``) or, if allowed, the server's."""
        spec = get_spec(name)
        return bool((keys or {}).get(spec.key_env) or (server_keys and self.settings.secret(spec.key_env)))

    def provider(
        self, name: str, keys: Mapping[str, SecretStr] | None = None, *, server_keys: bool = True
    ) -> Provider:
        """A ready provider adapter for ``name``; ConfigError if it has no usable key.

        A visitor's key (``keys``, by env name) wins over the server's; ``server_keys=False``
        refuses the server's own keys (a shared link whose operator did not allow strangers to spend them).
        """
        spec = self.specs.get(name) or get_spec(name)
        key = (keys or {}).get(spec.key_env)
        config = provider_config(spec, self.settings, key)
        if key is None and not server_keys and not self.settings.sandbox:
            config = provider_config(spec, self.settings.model_copy(update={"secrets": {}}), None)
        if config.api_key is None:
            raise ConfigError(
                f"{spec.label} has no API key: set {spec.key_env} in .env or the environment, "
                "or use the sandbox (--sandbox)."
                if server_keys
                else f"{spec.label} needs your own API key on this shared page: enter it under Keys ({spec.key_env})."
            )
        http = HttpClient(self.client, provider=spec.name, label=spec.label, key_env=spec.key_env, sleep=self._sleep)
        return spec.factory(config, http)

    def plan(
        self,
        request: GenerationRequest,
        targets: Sequence[Target],
        keys: Mapping[str, SecretStr] | None = None,
        *,
        server_keys: bool = True,
        vary_seed: bool = False,
    ) -> list[PlannedJob]:
        """Check every target before anything is sent; raise the first problem found.

        ``vary_seed`` gives target i the seed ``request.seed + i`` instead of one seed for all.
        """
        if not targets:
            raise ConfigError("No provider chosen: pick at least one provider and model.")
        plans = []
        for i, (name, model) in enumerate(dict.fromkeys(targets)):
            spec = self.specs.get(name) or get_spec(name)
            job_request = request.with_model(model)
            if vary_seed and request.seed is not None:
                job_request = job_request.model_copy(update={"seed": (request.seed + i) % 2**32})
            notes = check_request(spec.label, spec.capabilities, job_request)
            plans.append(PlannedJob(spec, self.provider(name, keys, server_keys=server_keys), job_request, notes))
        return plans

    async def run(
        self,
        request: GenerationRequest,
        targets: Sequence[Target],
        *,
        keys: Mapping[str, SecretStr] | None = None,
        server_keys: bool = True,
        vary_seed: bool = False,
        timeout_s: float | None = None,
        out_dir: Path | None = None,
    ) -> AsyncIterator[JobEvent]:
        """Run every target in parallel; yield each job's events as they happen.

        Every check runs before the first request is sent, so a bad target sends nothing at all.
        """
        plans = self.plan(request, targets, keys, server_keys=server_keys, vary_seed=vary_seed)
        run = _Run(self, uuid.uuid4().hex[:12], timeout_s, out_dir)
        async for event in run.stream([run.job(plan) for plan in plans]):
            yield event

    async def resume(
        self,
        job: JobRef,
        *,
        keys: Mapping[str, SecretStr] | None = None,
        timeout_s: float | None = None,
        out_dir: Path | None = None,
    ) -> AsyncIterator[JobEvent]:
        """Wait for a job that was already submitted, by its task id; nothing is submitted again."""
        spec = self.specs.get(job.provider) or get_spec(job.provider)
        run = _Run(self, uuid.uuid4().hex[:12], timeout_s, out_dir)
        provider = self.provider(job.provider, keys)
        async for event in run.stream([run.resume_job(spec, provider, job)]):
            yield event

    def poll_schedule(self, spec: ProviderSpec) -> PollSchedule:
        """The provider's documented schedule, unless PLAYGROUND_POLL_INTERVAL_S overrides it."""
        fixed = self.settings.poll_interval_s
        return PollSchedule(fixed, fixed) if fixed else spec.poll


class _Run:
    """One click: a set of jobs sharing a run id, an output folder and an event queue."""

    def __init__(self, service: GenerationService, run_id: str, timeout_s: float | None, out_dir: Path | None):
        self.service = service
        self.run_id = run_id
        self.timeout_s = timeout_s or service.settings.job_timeout_s
        self.out_dir = (out_dir or service.settings.out_dir) / run_id
        self.queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()

    async def stream(self, jobs: Sequence[Awaitable[None]]) -> AsyncIterator[JobEvent]:
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
        tracker = _Tracker(self, plan.spec, plan.request.model, plan.notes)
        try:
            tracker.emit("queued", "queued")
            submission = await plan.provider.submit(plan.request)
            tracker.task_id, tracker.sent = submission.job.task_id, submission.sent
            await self._follow(tracker, plan.spec, plan.provider, submission.job)
        except PlaygroundError as exc:
            tracker.fail(exc)
        except Exception as exc:  # a bug in an adapter must not take the other panels down
            log.exception("%s: unexpected error", plan.spec.name)
            tracker.fail(UnexpectedResponseError(f"{plan.spec.label}: internal error ({type(exc).__name__}: {exc})."))
        finally:
            self.queue.put_nowait(None)

    async def resume_job(self, spec: ProviderSpec, provider: Provider, job: JobRef) -> None:
        tracker = _Tracker(self, spec, job.model, ())
        tracker.task_id = job.task_id
        try:
            await self._follow(tracker, spec, provider, job)
        except PlaygroundError as exc:
            tracker.fail(exc)
        finally:
            self.queue.put_nowait(None)

    async def _follow(self, tracker: _Tracker, spec: ProviderSpec, provider: Provider, job: JobRef) -> None:
        tracker.emit("running", f"submitted as {job.task_id}")
        status = await self._wait(tracker, spec, provider, job)
        url = _outcome(spec, job, status)
        result = await self._keep(tracker, spec, job, url)
        tracker.emit("succeeded", f"done in {result.latency_s:.1f} s", result=result)

    async def _wait(self, tracker: _Tracker, spec: ProviderSpec, provider: Provider, job: JobRef) -> JobStatus:
        clock, sleep = self.service._clock, self.service._sleep
        schedule = self.service.poll_schedule(spec)
        deadline = tracker.started + self.timeout_s
        await sleep(min(schedule.first_s, max(0.0, deadline - clock())))
        unreadable = 0
        while True:
            try:
                status = await _read_status(provider, job)
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
            await sleep(min(schedule.interval_s, deadline - now))

    async def _keep(self, tracker: _Tracker, spec: ProviderSpec, job: JobRef, url: str) -> JobResult:
        content = await _download(self.service, spec, job, url)
        found = sniff(content)
        if found is None or found[0] not in RESULT_FORMATS:
            raise ResultImageError(
                f"{spec.label} returned a result that is not an image ({url[:80]}).", provider=spec.name, task_id=job.task_id
            )
        fmt, width, height = found
        mime = RESULT_FORMATS[fmt]
        path = self.out_dir / f"{spec.name}-{job.model}.{EXTENSIONS[mime]}"
        _write_atomically(path, content)
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


async def _read_status(provider: Provider, job: JobRef) -> JobStatus | None:
    """One status read; a transient failure (after the HTTP layer's retries) means 'ask again later'."""
    try:
        return await provider.status(job)
    except ProviderError as exc:
        if not exc.is_retryable:
            raise
        log.info("%s: status of %s unavailable for now (%s)", job.provider, job.task_id, exc.code)
        return None


def _outcome(spec: ProviderSpec, job: JobRef, status: JobStatus) -> str:
    """The result URL of a terminal status, or the JobError that explains why there is none."""
    reason = (status.error or "no reason given").strip().rstrip(".")
    common = {"provider": spec.name, "code": status.error_code, "task_id": job.task_id}
    if status.state == "succeeded":
        if not status.image_urls:
            raise ResultImageError(f"{spec.label} reported success for task {job.task_id} but gave no image URL.", **common)
        return status.image_urls[0]
    if status.state == "canceled":
        raise JobCanceledError(f"{spec.label} canceled task {job.task_id}: {reason}.", **common)
    if status.moderated:
        raise JobModeratedError(
            f"{spec.label} refused the job on content grounds: {reason}. Rephrase the prompt or use another image.",
            **common,
        )
    raise JobFailedError(f"{spec.label} reports the job failed: {reason}.", **common)


async def _download(service: GenerationService, spec: ProviderSpec, job: JobRef, url: str) -> bytes:
    if url.startswith("data:"):
        import base64

        return base64.b64decode(url.split(",", 1)[1])
    http = HttpClient(service.client, provider=spec.name, label=f"{spec.label}'s image host", sleep=service._sleep)
    try:
        response = await http.fetch("GET", url)
    except ProviderError as exc:
        raise ResultImageError(
            f"The result of task {job.task_id} could not be downloaded: {exc}", provider=spec.name, task_id=job.task_id
        ) from exc
    return response.content


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(content)
    os.replace(tmp, path)


class _Tracker:
    """Builds one job's events: same identity, elapsed time from submission."""

    def __init__(self, run: _Run, spec: ProviderSpec, model: ModelId, notes: tuple[str, ...]):
        self.run = run
        self.spec = spec
        self.model = model
        self.notes = notes
        self.started = run.service._clock()
        self.task_id: str | None = None
        self.sent: WireRequest | None = None
        self.last_running = 0.0

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
            message=message,
            notes=self.notes,
            sent=self.sent,
            **extra,  # type: ignore[arg-type]
        )
        self.run.queue.put_nowait(event)

    def fail(self, exc: PlaygroundError) -> None:
        state: JobState = "canceled" if isinstance(exc, JobCanceledError) else "failed"
        self.emit(state, f"{state}: {exc}", error=str(exc), code=exc.code, kind=type(exc).default_code)
