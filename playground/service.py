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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
from pydantic import SecretStr

from playground.addresses import local_address
from playground.capabilities import check_request, match_input_ratio, needs_hosting
from playground.errors import ConfigError, InvalidInputError, PlaygroundError, StoreError, WebhookError
from playground.history import History, RunRecord, RunRecorder
from playground.hosting import InputHost
from playground.http import HttpClient, Sleep, build_client
from playground.inbox import Inbox
from playground.models import Events, GenerationRequest, JobEvent, JobRef, Price
from playground.polling import PollingPolicy
from playground.providers import REGISTRY, Provider, ProviderConfig, ProviderSpec, get_spec
from playground.providers.base import CallbackUpdate
from playground.ratelimit import SlidingWindow
from playground.redact import Secrets
from playground.runner import PlannedJob, Run, RunContext
from playground.settings import Settings
from playground.storage import LocalStorage, Storage, with_local_results
from playground.watch import Clock

log = logging.getLogger(__name__)

Target = tuple[str, str]
"""(provider name, model id)."""

PRICE_SET_BY_YOU = "set by you in PLAYGROUND_PRICES"
ABANDONED = (
    "The playground stopped before the provider confirmed this job; if the provider created it, it is not tracked."
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
    keys: tuple[SecretStr, ...] = ()  # the visitor's keys: redacted from everything while the run lasts

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
        now: Callable[[], datetime] = _utc_now,
        history: History | None = None,
        input_host: InputHost | None = None,
        callback_base_url: str | None = None,
        storage: Storage | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.settings = settings
        self.specs = dict(specs)
        self.history = history
        self.input_host = input_host
        self.callback_base_url = callback_base_url.rstrip("/") if callback_base_url else None
        self.inbox = inbox or Inbox()
        self.storage = storage
        self.relay: Relay | None = None  # replicas: hands a callback for another replica's job over to it
        self.polling = PollingPolicy(history, fixed_interval_s=settings.poll_interval_s)
        self._read_limits: dict[str, SlidingWindow] = {}
        self.transport = transport
        self.sleep = sleep
        self.clock = clock
        self.secrets = Secrets(settings.secrets.values())  # configured keys and secrets: never shown, stored, logged
        self.now = now  # wall time (aware UTC), to measure a resumed job from its original submit
        self._client: httpx.AsyncClient | None = None
        self._public_client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared HTTP client, created on first use (on the running event loop)."""
        if self._client is None:
            self._client = build_client(self.settings.http_timeout_s, self.transport)
        return self._client

    @property
    def public_client(self) -> httpx.AsyncClient:
        """A client that connects only to public addresses: for URLs a visitor or a provider's answer names."""
        if self._public_client is None:
            self._public_client = build_client(self.settings.http_timeout_s, self.transport, guarded=True)
        return self._public_client

    @property
    def callbacks_enabled(self) -> bool:
        return self.callback_base_url is not None

    async def aclose(self) -> None:
        for client in (self._client, self._public_client):
            if client is not None:
                await client.aclose()
        self._client = self._public_client = None

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
        return self._adapter(name, keys, server_keys=server_keys)[0]

    def _adapter(
        self, name: str, keys: Mapping[str, SecretStr] | None, *, server_keys: bool
    ) -> tuple[Provider, HttpClient]:
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
        http = HttpClient(
            self.client, provider=spec.name, label=spec.label, key_env=spec.key_env, sleep=self.sleep, clock=self.clock
        )
        return spec.factory(config, http), http

    # --- plan, run, resume ---------------------------------------------------------------------------

    def plan(
        self,
        request: GenerationRequest,
        targets: Sequence[Target],
        keys: Mapping[str, SecretStr] | None = None,
        *,
        server_keys: bool = True,
        vary_seed: bool = False,
        trusted: bool = True,
    ) -> Plan:
        """Check every target before anything is sent: each is accepted (ready to submit) or refused.

        ``vary_seed`` gives target i the seed ``request.seed + i`` instead of one seed for all. ``trusted``: the
        local user or a password holder; a stranger on a shared page (False) never gets a private input URL used.
        """
        if not targets:
            raise ConfigError("No provider chosen: pick at least one provider and model.")
        jobs, refused = [], []
        for i, target in enumerate(dict.fromkeys(targets)):
            try:
                options = dict(server_keys=server_keys, vary_seed=vary_seed, trusted=trusted)
                jobs.append(self._planned(request, target, i, keys, **options))
            except PlaygroundError as exc:
                refused.append(Refusal(target, exc))
        return Plan(request, tuple(jobs), tuple(refused), tuple((keys or {}).values()))

    def _planned(
        self,
        request: GenerationRequest,
        target: Target,
        index: int,
        keys: Mapping[str, SecretStr] | None,
        *,
        server_keys: bool,
        vary_seed: bool,
        trusted: bool,
    ) -> PlannedJob:
        name, model = target
        spec = self.spec(name)
        job_request = request.with_model(model)
        if vary_seed and request.seed is not None:
            job_request = job_request.model_copy(update={"seed": (request.seed + index) % 2**32})
        job_request, ratio_note = match_input_ratio(spec, job_request)
        serving = [s.label for s in self.specs.values() if s.serves(model)]
        notes = check_request(spec, job_request, can_host=self.input_host is not None, served_by=serving)
        notes = (ratio_note, *notes) if ratio_note else notes
        resolve = self._check_reachable(spec, job_request, trusted=trusted)
        provider, http = self._adapter(name, keys, server_keys=server_keys)
        visitor_key = spec.key_env in (keys or {})
        return PlannedJob(spec, provider, job_request, notes, self._callback_url(spec, visitor_key), http, resolve)

    def is_local(self, spec: ProviderSpec) -> bool:
        """Whether ``spec``'s base URL is on this machine or a private network (a stand-in, the sandbox)."""
        return local_address(self.settings.value(spec.base_url_env, spec.default_base_url)) is not None

    def _check_reachable(self, spec: ProviderSpec, request: GenerationRequest, *, trusted: bool) -> bool:
        """Refuse an input URL written as a private or local address (in any spelling): a hosted provider cannot
        reach it, and a stand-in on this machine must not fetch one for a stranger.

        For a trusted requester it is allowed with PLAYGROUND_ALLOW_PRIVATE_URLS=1, in sandbox mode, and when the
        provider's own base URL is itself local. Returns whether the URL's name must still be resolved and
        checked before it is sent (the runner does it, just before the create).
        """
        url = request.image.url if request.image is not None else None
        if (
            url is None
            or trusted
            and (self.settings.allow_private_urls or self.settings.sandbox or self.is_local(spec))
        ):
            return False
        address = local_address(url)
        if address is None:
            return True
        if not trusted:  # a stranger: the operator's setting is no business of theirs
            raise InvalidInputError(
                f"The image URL {url[:80]} points at a private or local address; on this shared page only public "
                "http(s) URLs are used: give a public URL, or upload the file."
            )
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
        await self.polling.prepare(plan.targets)
        with self.secrets.lent(plan.keys):  # a provider may echo the visitor's key: redacted while the run lasts
            if store is not None:  # a store that cannot keep the run refuses it (StoreError): nothing sent
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
        await self.polling.prepare((ref.provider, ref.model) for ref in refs)
        waits = [
            run.resume_job(
                self.spec(ref.provider),
                self.provider(ref.provider, keys, server_keys=server_keys),
                ref,
                earlier_s=self._since_submit(ref),
            )
            for ref in refs
        ]
        with self.secrets.lent((keys or {}).values()):
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

    def _since_submit(self, ref: JobRef) -> float:
        """Seconds since the job was first submitted (0 when unknown): a resumed latency counts from there."""
        return max(0.0, (self.now() - ref.submitted_at).total_seconds()) if ref.submitted_at else 0.0

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
            schedule=self.polling.schedule,
            price=self.price,
            pace=self.pace,
            callbacks=self.callbacks_enabled,
            storage=LocalStorage(out_dir) if out_dir else self.storage,
            redact=self.secrets.event,
            downloads=self.download_client,
        )
        return Run(
            context,
            run_id,
            timeout_s=timeout_s or self.settings.job_timeout_s,
            out_dir=out_dir or self.settings.out_dir,
        )

    # --- what a run uses -----------------------------------------------------------------------------

    def price(self, spec: ProviderSpec, model: str) -> Price | None:
        """The price of one image of ``model`` on ``spec``: the operator's (PLAYGROUND_PRICES), else the list price.

        A price the provider bills in its answer wins over both (the runner applies it).
        """
        usd = self.settings.price_set_for(spec.name, model)
        if usd is not None:
            return Price(usd=usd, source=PRICE_SET_BY_YOU)
        return spec.prices.get(model)

    async def pace(self, spec: ProviderSpec) -> None:
        """Before a status read: wait while the provider's documented request rate is used up."""
        if spec.max_reads_per_minute is None:
            return
        window = self._read_limits.get(spec.name)
        if window is None:
            window = SlidingWindow(spec.max_reads_per_minute, clock=self.clock, sleep=self.sleep)
            self._read_limits[spec.name] = window
        await window.acquire()

    def hosted(self, spec: ProviderSpec, request: GenerationRequest) -> GenerationRequest:
        """The request with a local input replaced by a hosted URL, for providers that need a URL."""
        if self.input_host is None or request.image is None or not needs_hosting(spec.capabilities, request):
            return request
        return request.model_copy(update={"image": self.input_host.publish(request.image)})

    def download_client(self, spec: ProviderSpec) -> httpx.AsyncClient:
        """The client that fetches ``spec``'s results: public addresses only, unless the provider is itself local
        (a stand-in, the sandbox) or PLAYGROUND_ALLOW_PRIVATE_URLS=1. No key goes with it either way."""
        return self.client if self.settings.allow_private_urls or self.is_local(spec) else self.public_client

    async def keep(self, event: JobEvent, *, store: RunRecorder | None = None) -> None:
        """Learn from the event (polling) and record it in history (``store``, else the service's); a history
        failure is logged, never fatal to the job."""
        self.polling.learn(event)
        keeper: RunRecorder | None = store or self.history
        if keeper is None:
            return
        try:
            await keeper.record(event)
        except StoreError as exc:
            log.warning("%s (%s event of %s)", exc, event.state, event.key)
        except Exception:
            log.exception("could not record %s event for %s in history", event.state, event.key)

    # --- callbacks in --------------------------------------------------------------------------------

    def deliver_callback(self, name: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Handle one webhook delivery: (HTTP status to answer, short reason). Thread-safe and fast."""
        update = self._verified(name, headers, body)
        return update if isinstance(update, tuple) else self._deliver(name, update)

    async def receive_callback(self, name: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """deliver_callback, and with replicas a verified delivery for another replica's job is handed to it."""
        update = self._verified(name, headers, body)
        if isinstance(update, tuple):
            return update
        answer = self._deliver(name, update)
        if answer[0] == 404 and self.relay is not None:
            return await self.relay.hand_over(name, update)
        return answer

    async def results_of(self, record: RunRecord) -> RunRecord:
        """The run with its results as local files the page can show (fetched from shared storage if need be)."""
        return record if self.storage is None else await with_local_results(self.storage, record)

    def _verified(self, name: str, headers: Mapping[str, str], body: bytes) -> CallbackUpdate | tuple[int, str]:
        """The delivery, checked as the provider documents; or the answer that refuses it."""
        try:
            return self.provider(name).parse_callback({k.lower(): v for k, v in headers.items()}, body, now=time.time())
        except WebhookError as exc:
            log.warning("rejected a %s callback: %s", name, exc)
            return 401, str(exc)
        except PlaygroundError as exc:
            return 404, str(exc)

    def _deliver(self, name: str, update: CallbackUpdate) -> tuple[int, str]:
        waiter = self.inbox.waiter(name, update.task_id)
        if waiter is None and self.inbox.finished(name, update.task_id):
            return 200, "already finished"
        if waiter is None and self.relay is not None:
            return 404, "not waiting here"  # receive_callback hands it to the replica that waits for it
        if waiter is None:
            log.warning(
                "ignored a %s callback for task %s, which this process is not waiting for", name, update.task_id
            )
            return 404, "unknown task"
        if not self.inbox.first_time(name, update.delivery_id):
            return 200, "duplicate"
        waiter.deliver(update.status)
        return 200, "ok" if update.status is not None else "will confirm with a status read"


class Relay(Protocol):
    """Hands a verified callback for a job this process is not waiting for to the replica that is."""

    async def hand_over(self, provider: str, update: CallbackUpdate) -> tuple[int, str]:
        """(HTTP status to answer, short reason), once the delivery is kept where its owner will see it."""
        ...


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
