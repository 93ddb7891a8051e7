"""Helpers every sandbox protocol uses: auth, JSON bodies, faults, files. No provider vocabulary here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from playground.sandbox.core import PRESENTED_KEY, RETRY_AFTER_S, SandboxJob, SandboxState, Stage

log = logging.getLogger(__name__)

ErrorShape = Callable[[int, str, str], Response]
"""A protocol's error answer: (status, message, machine code) -> Response."""


def origin(request: Request) -> str:
    """scheme://host:port of the sandbox server, for URLs it hands out."""
    return f"{request.url.scheme}://{request.url.netloc}"


def mount_url(request: Request) -> str:
    """The base URL this protocol is mounted at (origin + mount path)."""
    return origin(request) + str(request.scope.get("root_path", ""))


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, or None when the body is not one."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def fault(state: SandboxState, provider: str, stage: Stage, error: ErrorShape) -> Response | None:
    """The injected fault for this request, in the protocol's own error shape, if one is queued."""
    kind = state.take_fault(provider, stage)
    if kind is None:
        return None
    if kind == "429":
        response = error(429, "Too many requests, slow down", "rate_limited")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    if kind == "malformed":
        return Response("<html><body>502 Bad Gateway</body></html>", status_code=200, media_type="text/html")
    if kind == "455":
        return error(455, "Service unavailable: system under maintenance", "maintenance")
    if kind == "401":  # repeats the key it was given, as some APIs do (see core.PRESENTED_KEY)
        return error(401, f"Invalid API key: {PRESENTED_KEY.get() or '(none)'}", "invalid_api_key")
    await asyncio.sleep(0)
    return error(int(kind), "Internal server error (injected by the sandbox)", "server_error")


CallbackBuilder = Callable[[SandboxJob], Awaitable[tuple[bytes, dict[str, str]]]]
"""Builds a job's callback delivery: (raw JSON body, extra headers such as signatures)."""


def schedule_callback(state: SandboxState, job: SandboxJob, build: CallbackBuilder) -> None:
    """POST the job's callback when it ends, as the provider would (never for a job that never ends)."""
    if not job.callback_url or job.outcome == "never":
        return

    async def deliver() -> None:
        await asyncio.sleep(job.duration_s)
        body, headers = await build(job)
        for _ in range(state.callback_copies):
            await _post(state, job, body, headers)

    task = asyncio.get_running_loop().create_task(deliver())
    state.background.add(task)
    task.add_done_callback(state.background.discard)


def _client(state: SandboxState) -> httpx.AsyncClient:
    """One client per event loop for the sandbox's callbacks, as a provider keeps its connections warm."""
    loop = asyncio.get_running_loop()
    client = state.callback_clients.get(loop)
    if client is None:
        client = state.callback_clients[loop] = httpx.AsyncClient(timeout=10)
    return client


async def _post(state: SandboxState, job: SandboxJob, body: bytes, headers: dict[str, str]) -> None:
    assert job.callback_url is not None
    try:
        client = _client(state)
        state.callback_sent_at.setdefault(job.id, time.time())  # the first delivery's send (benchmarks)
        response = await client.post(
            job.callback_url, content=body, headers={"content-type": "application/json", **headers}
        )
        state.callbacks_sent.append((job.provider, job.id, response.status_code))
    except httpx.HTTPError as exc:
        log.warning("sandbox: callback to %s failed (%s)", job.callback_url, exc)
        state.callbacks_sent.append((job.provider, job.id, 0))
