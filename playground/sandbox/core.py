"""Sandbox state shared by every protocol: jobs on a clock, injected faults, served files, a request log."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import os
import random
import re
import threading
import time
import typing
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from playground.addresses import AddressRefusedError, check_url
from playground.errors import InvalidInputError
from playground.images import MAX_INPUT_BYTES
from playground.sandbox.draw import LONG_SIDE_PX, render
from playground.sandbox.faults import HttpFault, Outcome, fault_item
from playground.transport import build_client

log = logging.getLogger(__name__)

Stage = Literal["create", "status", "upload"]
# The key the request being answered presented (set by key_ok): an injected 401 repeats it, as some APIs do, so
# tests can prove that nothing the playground shows or keeps carries a key a provider echoed.
PRESENTED_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("presented_key", default=None)

# Typical seconds per job, so the sandbox shows differences worth comparing; [max] is slower.
TYPICAL_JOB_S: dict[str, float] = {
    "kie": 3.2,
    "fluxapi": 3.6,
    "runapi": 2.6,
    "runflow": 4.1,
    "apixo": 2.9,
    "bfl": 2.2,
    "fal": 3.0,
    "replicate": 3.8,
}
MAX_MODEL_FACTOR = 1.3
RETRY_AFTER_S = 1
READY_IMAGE_PX = 64
INPUT_FETCH_TIMEOUT_S = 5.0
_PROMPT_OUTCOME = re.compile(r"sandbox:(fail|moderate|never)")


@dataclass
class SandboxJob:
    """One job the sandbox is 'running': it finishes ``duration_s`` after creation."""

    id: str
    provider: str
    model: str
    prompt: str
    body: dict[str, object]
    created_at: float
    duration_s: float
    outcome: Outcome
    aspect_ratio: str | None = None
    output_format: str = "jpeg"
    input_url: str | None = None
    callback_url: str | None = None
    result: bytes | None = field(default=None, repr=False)

    def elapsed(self, now: float) -> float:
        return now - self.created_at

    def is_done(self, now: float) -> bool:
        return self.outcome != "never" and self.elapsed(now) >= self.duration_s


@dataclass(frozen=True)
class Recorded:
    provider: str
    method: str
    path: str
    stage: str


class SandboxState:
    """Everything the sandbox remembers. Thread-safe enough for one server thread plus tests."""

    def __init__(
        self,
        *,
        job_seconds: float | None = None,
        keys: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        persist_dir: Path | None = None,
    ) -> None:
        self.job_seconds = job_seconds
        self.keys = keys or {}
        self.clock = clock
        self.jobs: dict[str, SandboxJob] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[Recorded] = []
        self._faults: dict[tuple[str, str], list[HttpFault]] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.callback_copies = 1
        self.signing_secrets: dict[str, str] = {}  # provider -> secret, overriding the module's default
        self.persist_dir = persist_dir
        self.labels: dict[str, str] = {}  # provider -> label kept in its images' metadata (set by the server)
        self.bias: dict[str, float] = {}  # provider -> image quality bias in [-1, 1] (draw.grain_sd)
        self._renders: dict[str, asyncio.Task[None]] = {}
        self.callbacks_sent: list[tuple[str, str, int]] = []
        self.callback_sent_at: dict[str, float] = {}  # job id -> wall time its callback was sent
        self.callback_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.background: set[asyncio.Task[None]] = set()
        # Benchmarks: draw each job's duration from ``durations(provider, model)``, and serve one small
        # ready-made image per format instead of drawing, so the sandbox's own work does not dominate.
        self.durations: Callable[[str, str], float] | None = None
        self.ready_made = False
        self.image_px = LONG_SIDE_PX  # the long side of the images it draws (tests draw smaller ones)
        # The in-app sandbox of a page strangers reach fetches input images as the playground does: public
        # addresses only (and capped), except the app's own hosted inputs at these origins.
        self.guard_inputs = False
        self.allowed_input_origins: set[str] = set()

    # --- configuration ---------------------------------------------------------------------

    def inject(self, provider: str, stage: Stage, fault: HttpFault, times: int = 1) -> None:
        """Answer the next ``times`` requests of ``stage`` for ``provider`` with ``fault``."""
        with self._lock:
            self._faults.setdefault((provider, stage), []).extend([fault] * times)

    def set_outcome(self, provider: str, outcome: Outcome) -> None:
        """Make every later job of ``provider`` end this way."""
        self._outcomes[provider] = outcome

    def configure(self, spec: str, *, providers: typing.Collection[str] | None = None) -> None:
        """Apply SANDBOX_FAULTS, e.g. ``runapi:create=500,kie:job=moderate,apixo:status=429*2``.

        ValueError naming the first bad item (nothing is applied then): an unknown provider (when ``providers``
        is given), stage, fault or outcome, or a count out of range (sandbox/faults.py).
        """
        items = [fault_item(item, providers) for item in filter(None, (part.strip() for part in spec.split(",")))]
        for provider, stage, what, times in items:
            if stage == "job":
                self.set_outcome(provider, what)  # type: ignore[arg-type]
            else:
                self.inject(provider, stage, what, times)  # type: ignore[arg-type]

    def set_bias(self, provider: str, bias: float) -> None:
        """Make ``provider``'s later images worse (bias below 0, coarser grain) or better (above 0)."""
        if not -1.0 <= bias <= 1.0:
            raise ValueError(f"a sandbox bias is between -1 and 1, not {bias}")
        self.bias[provider] = bias

    def configure_bias(self, spec: str) -> None:
        """Apply SANDBOX_BIAS, e.g. ``kie:-0.5,apixo:0.2``."""
        for item in filter(None, (part.strip() for part in spec.split(","))):
            match = re.fullmatch(r"(\w+):([-+]?\d*\.?\d+)", item)
            if not match:
                raise ValueError(f"SANDBOX_BIAS item {item!r} is not provider:number, like kie:-0.5")
            self.set_bias(match.group(1), float(match.group(2)))

    def take_fault(self, provider: str, stage: Stage) -> HttpFault | None:
        with self._lock:
            queue = self._faults.get((provider, stage))
            return queue.pop(0) if queue else None

    # --- requests, keys, jobs --------------------------------------------------------------

    def record(self, provider: str, method: str, path: str, stage: str) -> None:
        entry = Recorded(provider, method, path, stage)
        with self._lock:
            self.requests.append(entry)
            if self.persist_dir is not None:
                with (self.persist_dir / "requests.jsonl").open("a") as log_file:
                    log_file.write(json.dumps(asdict(entry)) + "\n")

    def count(self, provider: str | None = None, stage: str | None = None) -> int:
        return sum(1 for r in self.requests if provider in (None, r.provider) and stage in (None, r.stage))

    def key_ok(self, provider: str, presented: str | None) -> bool:
        """A key is accepted when it matches the configured one, or any non-blank key if none is set."""
        PRESENTED_KEY.set(presented)
        if not presented:
            return False
        expected = self.keys.get(provider)
        return presented == expected if expected else True

    def new_job(self, provider: str, model: str, prompt: str, body: dict[str, object], **kw: object) -> SandboxJob:
        job = SandboxJob(
            id=uuid.uuid4().hex,
            provider=provider,
            model=model,
            prompt=prompt,
            body=body,
            created_at=self.clock(),
            duration_s=self._duration(provider, model),
            outcome=self._outcome(provider, prompt),
            **kw,  # type: ignore[arg-type]
        )
        self.jobs[job.id] = job
        self._save_jobs()
        self._prerender(job)
        return job

    def _prerender(self, job: SandboxJob) -> None:
        """Draw the result in a worker thread right away, so it is ready when the job 'finishes'."""
        if job.outcome != "success":
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._renders[job.id] = loop.create_task(self._render(job, self.labels.get(job.provider, job.provider)))

    def _duration(self, provider: str, model: str) -> float:
        if self.durations is not None:
            return self.durations(provider, model)
        if self.job_seconds is not None:
            return self.job_seconds
        typical = TYPICAL_JOB_S.get(provider, 3.0) * (MAX_MODEL_FACTOR if "max" in model else 1.0)
        return round(typical * self._rng.uniform(0.85, 1.15), 2)

    def _outcome(self, provider: str, prompt: str) -> Outcome:
        match = _PROMPT_OUTCOME.search(prompt)
        if match:
            return match.group(1)  # type: ignore[return-value]
        return self._outcomes.get(provider, "success")

    def add_file(self, content: bytes, mime: str, name: str = "") -> str:
        file_id = uuid.uuid4().hex + (f"-{name}" if name else "")
        self.files[file_id] = (content, mime)
        if self.persist_dir is not None:
            (self.persist_dir / "files").mkdir(exist_ok=True)
            (self.persist_dir / "files" / file_id).write_bytes(content)
            (self.persist_dir / "files" / f"{file_id}.type").write_text(mime)
        return file_id

    # --- persistence: a sandbox inside an app that is killed must remember its jobs -------

    @classmethod
    def load(cls, persist_dir: Path, **kw: Any) -> SandboxState:
        """A state that keeps its jobs, request log and files under ``persist_dir`` (and reloads them)."""
        persist_dir.mkdir(parents=True, exist_ok=True)
        state = cls(persist_dir=persist_dir, **kw)
        jobs_file = persist_dir / "jobs.json"
        if jobs_file.exists():
            names = {f.name for f in fields(SandboxJob)} - {"result"}
            for raw in json.loads(jobs_file.read_text()):
                job = SandboxJob(**{k: v for k, v in raw.items() if k in names})
                state.jobs[job.id] = job
        requests_file = persist_dir / "requests.jsonl"
        if requests_file.exists():
            state.requests = [Recorded(**json.loads(line)) for line in requests_file.read_text().splitlines() if line]
        for path in (persist_dir / "files").glob("*.type") if (persist_dir / "files").exists() else ():
            data = path.with_suffix("")
            if data.exists():
                state.files[data.name] = (data.read_bytes(), path.read_text())
        return state

    def _save_jobs(self) -> None:
        if self.persist_dir is None:
            return
        rows = [{k: v for k, v in asdict(job).items() if k != "result"} for job in self.jobs.values()]
        tmp = self.persist_dir / "jobs.json.part"
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, self.persist_dir / "jobs.json")

    async def result_url(self, job: SandboxJob, origin: str, label: str) -> str:
        """Render the job's image once (fetching its input image if any) and return where it is served."""
        pending = self._renders.pop(job.id, None)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            await pending  # a job created from another loop (a test's) is simply drawn again here
        if job.result is None:
            await self._render(job, label)
        ext = "png" if job.output_format == "png" else "jpg"
        return f"{origin}/files/result-{job.id}.{ext}"

    def _served_file(self, url: str) -> bytes | None:
        name = _served_name(url)
        found = (self.files.get(name) or self.files.get(name.rsplit(".", 1)[0])) if name else None
        return found[0] if found else None

    async def _render(self, job: SandboxJob, label: str) -> None:
        mime = "image/png" if job.output_format == "png" else "image/jpeg"
        if self.ready_made:
            job.result = ready_image(job.output_format)
            self.files[f"result-{job.id}"] = (job.result, mime)
            return
        source = await self.fetch_input(job.input_url) if job.input_url else None
        args = (label, job.model, job.prompt, job.aspect_ratio, job.output_format, source)
        job.result = await asyncio.to_thread(
            render, *args, long_side=self.image_px, bias=self.bias.get(job.provider, 0.0)
        )
        self.files[f"result-{job.id}"] = (job.result, mime)

    async def fetch_input(self, url: str) -> bytes | None:
        """The input image's bytes (files served by this sandbox are found by URL); None when unreadable or, on a
        guarded sandbox, not on a public address."""
        local = self._served_file(url)
        if local is not None:
            return local
        guarded = self.guard_inputs and _origin(url) not in self.allowed_input_origins
        try:
            if guarded:
                await check_url(url, allow_private=False, must_resolve=True)
            async with build_client(INPUT_FETCH_TIMEOUT_S, guarded=guarded) as client:
                return await _read_capped(client, url)
        except (httpx.HTTPError, AddressRefusedError, InvalidInputError, ValueError) as exc:
            log.warning("sandbox: could not fetch input image %s (%s); drawing a placeholder", url[:80], exc)
            return None


@functools.cache
def ready_image(fmt: str) -> bytes:
    """A small plain image, drawn once per format (benchmarks)."""
    return render("sandbox", "ready-made", "benchmark", "1:1", fmt, None, long_side=READY_IMAGE_PX)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _read_capped(client: httpx.AsyncClient, url: str) -> bytes:
    """GET ``url``; ValueError once the body passes MAX_INPUT_BYTES (it is never read further)."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_INPUT_BYTES:
                raise ValueError(f"larger than {MAX_INPUT_BYTES} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def _served_name(url: str) -> str | None:
    """The file name when ``url`` points at the sandbox's own /files/ on loopback."""
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")) or "/files/" not in url:
        return None
    return url.split("/files/", 1)[1]
