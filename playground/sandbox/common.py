"""Helpers every sandbox protocol uses: auth, JSON bodies, faults, files. No provider vocabulary here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from playground.sandbox.core import RETRY_AFTER_S, SandboxState, Stage

ErrorShape = Callable[[int, str, str], Response]
"""A protocol's error answer: (status, message, machine code) -> Response."""


def origin(request: Request) -> str:
    """scheme://host:port of the sandbox server, for URLs it hands out."""
    return f"{request.url.scheme}://{request.url.netloc}"


def mount_url(request: Request) -> str:
    """The base URL this protocol is mounted at (origin + mount path)."""
    return origin(request) + request.scope.get("root_path", "")


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
    await asyncio.sleep(0)
    return error(int(kind), "Internal server error (injected by the sandbox)", "server_error")


def json_response(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)
