"""The generation service, the one door into the engine: plan, run, resume, callbacks in.

The CLI and the UI build a request with ``playground.request.build_request``, ask ``plan()`` which targets
can take it (each accepted or refused with a sentence, nothing sent yet), then ``run()`` the plan and
stream its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from playground.capabilities import check_request, needs_hosting
from playground.errors import ConfigError, InvalidInputError, PlaygroundError, WebhookError
from playground.fetch import local_address
from playground.history import History, RunRecorder
from playground.hosting import InputHost
from playground.http import HttpClient, Sleep, build_client
from playground.inbox import Inbox
from playground.models import Events, GenerationRequest, JobEvent, JobRef, Price
from playground.providers import REGISTRY, Provider, ProviderConfig, ProviderSpec, get_spec
from playground.runner import PlannedJob, Run, RunContext
from playground.settings import Settings
from playground.watch import Clock, FixedSchedule, Schedule

log = logging.getLogger(__name__)

Target = tuple[str, str]
"""(provider name, model id)."""

ABANDONED = (
    "The playground stopped before the provider confirmed this job; if the provider created it, it is not tracked."
)


@dataclass(frozen=True)
class Refusal:
    """A target that cannot take the request, and why (one sentence); nothing was sent for it."""

    target: Target
    error: PlaygroundError

    @property
    def reason(self) -> str:
        return str(self.error)


@dataclass(frozen=True)
class Plan:
    """What ``plan()`` decided for each target: ready to submit, or refused with its sentence."""

    request: GenerationRequest
    jobs: tuple[PlannedJob, ...]
    refused: tuple[Refusal, ...]

    @property
    def targets(self) -> list[Target]:
        """The accepted targets, in the order asked for."""
        return [(job.spec.name, job.request.model) for job in self.jobs]

    def raise_first(self) -> None:
        """Raise the first refusal's error, if any target was refused."""
        if self.refused:
            raise self.refused[0].error


class GenerationService:
    """Submit one request to many (provider, model) targets at once and stream what happens."""

    def __init__(
        self,
        settings: Settings,
        *,
        specs: Mapping[str, ProviderSpec] = REGISTRY,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        history: History | None = None,
        input_host: InputHost | None = None,
        callback_base_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.specs = dict(specs)
        self.history = history
        self.input_host = input_host
        self.callback_base_url = callback_base_url.rstrip("/") if callback_base_url else None
        self.inbox = Inbox()
        self.transport = transport
        self.sleep = sleep
        self.clock = clock
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared HTTP client, created on first use (on the running event loop)."""
        if self._client is None:
            self._client = build_client(self.settings.http_timeout_s, self.transport)
        return self._client

    @property
    def callbacks_enabled(self) -> bool:
        return self.callback_base_url is not None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def spec(self, name: str) -> ProviderSpec:
        return self.specs.get(name) or get_spec(name)

    # --- keys and adapters -------------------------------------------------------------------------

    def is_configured(
        self, name: str, keys: Mapping[str, SecretStr] | None = None, *, server_keys: bool = True
    ) -> bool:
        """Whether ``name`` has a key: the visitor's (``keys``) or, if allowed, the server's."""
        spec = self.spec(name)
        return bool((keys or {}).get(spec.key_env) or (server_keys and self.settings.secret(spec.key_env)))

    def provider(self, name: str, keys: Mapping[str, SecretStr] | None = None, *, server_keys: bool = True) -> Provider:
        """A ready provider adapter for ``name``; ConfigError if it has no usable key.

        A visitor's key (``keys``, by env name) wins over the server's; ``server_keys=False``
        refuses the server's own keys (a shared link whose operator did not allow strangers to spend them).
        """
        spec = self.spec(name)
        key = (keys or {}).get(spec.key_env)
        settings = self.settings
        if key is None and not server_keys and not settings.sandbox:
            settings = settings.model_copy(update={"secrets": {}})
        config = provider_config(spec, settings, key)
        if config.api_key is None:
            raise ConfigError(
                f"{spec.label} has no API key: set {spec.key_env} in .env or the environment, "
                "or use the sandbox (--sandbox)."
                if server_keys
                else f"{spec.label} needs your own API key on this shared page: enter it under Keys ({spec.key_env})."
            )
        http = HttpClient(self.client, provider=spec.name, label=spec.label, key_env=spec.key_env, sleep=self.sleep)
        return spec.factory(config, http)

    # --- plan, run, resume ---------------------------------------------------------------------------

    def plan(
        self,
        request: GenerationRequest,
        targets: Sequence[Target],
        keys: Mapping[str, SecretStr] | None = None,
        *,
        server_keys: bool = True,
        vary_seed: bool = False,
    ) -> Plan:
        """Check every target before anything is sent: each is accepted (ready to submit) or refused.

        ``vary_seed`` gives target i the seed ``request.seed + i`` instead of one seed for all.
        """
        if not targets:
            raise ConfigError("No provider chosen: pick at least one provider and model.")
        jobs, refused = [], []
        for i, target in enumerate(dict.fromkeys(targets)):
            try:
                jobs.append(self._planned(request, target, i, keys, server_keys=server_keys, vary_seed=vary_seed))
            except PlaygroundError as exc:
                refused.append(Refusal(target, exc))
        return Plan(request, tuple(jobs), tuple(refused))

    def _planned(
        self,
        request: GenerationRequest,
        target: Target,
        index: int,
        keys: Mapping[str, SecretStr] | None,
        *,
        server_keys: bool,
        vary_seed: bool,
    ) -> PlannedJob:
        name, model = target
        spec = self.spec(name)
        job_request = request.with_model(model)
        if vary_seed and request.seed is not None:
            job_request = job_request.model_copy(update={"seed": (request.seed + index) % 2**32})
        serving = [s.label for s in self.specs.values() if s.serves(model)]
        notes = check_request(spec, job_request, can_host=self.input_host is not None, served_by=serving)
        self._check_reachable(spec, job_request)
        provider = self.provider(name, keys, server_keys=server_keys)
        visitor_key = spec.key_env in (keys or {})
        return PlannedJob(spec, provider, job_request, notes, self._callback_url(spec, visitor_key))

    def _check_reachable(self, spec: ProviderSpec, request: GenerationRequest) -> None:
        """Refuse an input URL on a private or local address, which a hosted provider cannot reach.

        Allowed with PLAYGROUND_ALLOW_PRIVATE_URLS=1, in sandbox mode, and when the provider's own base URL is
        itself on a local address (a stand-in on this machine can reach it). file:// never gets this far.
        """
        url = request.image.url if request.image is not None else None
        if url is None or self.settings.allow_private_urls or self.settings.sandbox:
            return
        address = local_address(url)
        if address is None or local_address(self.settings.value(spec.base_url_env, spec.default_base_url)):
            return
        raise InvalidInputError(
            f"The image URL {url[:80]} points at a private or local address ({address}) that {spec.label} cannot "
            "reach; use a public URL or a local file (or set PLAYGROUND_ALLOW_PRIVATE_URLS=1 for local testing)."
        )

    def _callback_url(self, spec: ProviderSpec, visitor_key: bool) -> str | None:
        # A visitor's own account signs callbacks with a secret we do not have: poll those jobs instead.
        if self.callback_base_url is None or not spec.capabilities.callbacks or visitor_key:
            return None
        return f"{self.callback_base_url}/webhooks/{spec.name}"

    async def run(
        self,
        plan: Plan,
        *,
        timeout_s: float | None = None,
        out_dir: Path | None = None,
        owner: str | None = None,
        history: RunRecorder | None = None,
    ) -> Events:
        """Run the plan's accepted jobs in parallel; yield each job's events as they happen.

        Refused targets are the caller's to show: nothing is sent for them. ``owner`` (an opaque browser id)
        is kept with the run in history. ``history`` keeps this run instead of the service's own store (the
        arena holds a blind round back until its vote).
        """
        if not plan.jobs:
            return
        store: RunRecorder | None = history or self.history
        run = self._new_run(uuid.uuid4().hex[:12], timeout_s, out_dir, store=history)
        if store is not None:
            kind = "edit" if plan.request.is_edit else "generate"
            await store.start_run(run.run_id, plan.request, plan.targets, kind=kind, owner=owner)
        async with contextlib.aclosing(run.stream([run.job(job) for job in plan.jobs])) as events:
            async for event in events:  # closing this stream (Stop) stops the jobs at once, as 'stopped'
                yield event

    async def resume(
        self,
        jobs: JobRef | Sequence[JobRef],
        *,
        run_id: str | None = None,
        keys: Mapping[str, SecretStr] | None = None,
        server_keys: bool = True,
        timeout_s: float | None = None,
        out_dir: Path | None = None,
    ) -> Events:
        """Wait again for jobs already submitted (by task id), in parallel; nothing is submitted again.

        ``keys`` and ``server_keys`` choose the key as for :meth:`plan`: a job is read with the key it was sent with.
        """
        refs = [jobs] if isinstance(jobs, JobRef) else list(jobs)
        run = self._new_run(run_id or uuid.uuid4().hex[:12], timeout_s, out_dir)
        waits = [
            run.resume_job(self.spec(ref.provider), self.provider(ref.provider, keys, server_keys=server_keys), ref)
            for ref in refs
        ]
        async with contextlib.aclosing(run.stream(waits)) as events:
            async for event in events:
                yield event

    async def resume_unfinished(self) -> int:
        """After a restart: wait again for every job history says was submitted and not finished.

        Jobs without a task id cannot be found again and are marked failed. Returns how many were resumed.
        """
        if self.history is None:
            return 0
        await self.history.abandon_unsubmitted(ABANDONED)
        runs: dict[str, list[JobRef]] = {}
        for stored in await self.history.unfinished_jobs():
            ref = stored.ref()
            if ref is not None:
                runs.setdefault(stored.run_id, []).append(ref)
        await asyncio.gather(*(_drain(self.resume(refs, run_id=run_id)) for run_id, refs in runs.items()))
        return sum(len(refs) for refs in runs.values())

    def _new_run(
        self, run_id: str, timeout_s: float | None, out_dir: Path | None, *, store: RunRecorder | None = None
    ) -> Run:
        context = RunContext(
            client=self.client,
            clock=self.clock,
            sleep=self.sleep,
            inbox=self.inbox,
            record=self.keep if store is None else functools.partial(self.keep, store=store),
            hosting=self.hosted,
            schedule=self.schedule,
            price=self.price,
            callbacks=self.callbacks_enabled,
        )
        return Run(
            context,
            run_id,
            timeout_s=timeout_s or self.settings.job_timeout_s,
            out_dir=out_dir or self.settings.out_dir,
        )

    # --- what a run uses -----------------------------------------------------------------------------

    def schedule(self, spec: ProviderSpec, model: str) -> Schedule:
        """When to read a job's status: the provider's documented schedule, or PLAYGROUND_POLL_INTERVAL_S."""
        fixed = self.settings.poll_interval_s
        return FixedSchedule(fixed, fixed) if fixed else FixedSchedule(spec.poll.first_s, spec.poll.interval_s)

    def price(self, spec: ProviderSpec, model: str) -> Price | None:
        """The price of one image of ``model`` on ``spec``, with its source."""
        return spec.prices.get(model)

    def hosted(self, spec: ProviderSpec, request: GenerationRequest) -> GenerationRequest:
        """The request with a local input replaced by a hosted URL, for providers that need a URL."""
        if self.input_host is None or request.image is None or not needs_hosting(spec.capabilities, request):
            return request
        return request.model_copy(update={"image": self.input_host.publish(request.image)})

    async def keep(self, event: JobEvent, *, store: RunRecorder | None = None) -> None:
        """Record an event in history (``store``, else the service's); a failure is logged, never fatal to the job."""
        keeper: RunRecorder | None = store or self.history
        if keeper is None:
            return
        try:
            await keeper.record(event)
        except Exception:
            log.exception("could not record %s event for %s in history", event.state, event.key)

    # --- callbacks in --------------------------------------------------------------------------------

    def deliver_callback(self, name: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Handle one webhook delivery: (HTTP status to answer, short reason). Thread-safe and fast."""
        try:
            update = self.provider(name).parse_callback(
                {k.lower(): v for k, v in headers.items()}, body, now=time.time()
            )
        except WebhookError as exc:
            log.warning("rejected a %s callback: %s", name, exc)
            return 401, str(exc)
        except PlaygroundError as exc:
            return 404, str(exc)
        waiter = self.inbox.waiter(name, update.task_id)
        if waiter is None and self.inbox.finished(name, update.task_id):
            return 200, "already finished"
        if waiter is None:
            log.warning(
                "ignored a %s callback for task %s, which this process is not waiting for", name, update.task_id
            )
            return 404, "unknown task"
        if not self.inbox.first_time(name, update.delivery_id):
            return 200, "duplicate"
        waiter.deliver(update.status)
        return 200, "ok" if update.status is not None else "will confirm with a status read"


def provider_config(spec: ProviderSpec, settings: Settings, key: SecretStr | None = None) -> ProviderConfig:
    """Where and as whom to reach ``spec``: base URL from settings, key from ``key`` or settings."""
    extra = {name: settings.value(name, default) for name, default in spec.extra_env.items()}
    secrets = {name: secret for name in spec.extra_env if (secret := settings.secret(name)) is not None}
    return ProviderConfig(
        name=spec.name,
        label=spec.label,
        base_url=settings.value(spec.base_url_env, spec.default_base_url),
        api_key=key or settings.secret(spec.key_env),
        key_env=spec.key_env,
        extra=extra,
        secrets=secrets,
    )


async def _drain(events: Events) -> None:
    """Consume a stream whose events matter only to history (recorded as they pass)."""
    try:
        async for event in events:
            if event.is_terminal:
                log.info("resumed %s %s: %s", event.key, event.task_id, event.message)
    except PlaygroundError as exc:
        log.warning("could not resume jobs: %s", exc)
