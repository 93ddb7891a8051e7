"""Sandbox of the RunAPI.ai protocol, written from RunAPI.ai docs, the flux-kontext SDK and the core SDK.

Bare JSON objects, no envelope. Errors are an HTTP status with ``{"error": {"code", "message"}}``
(GUESS from the SDK's error parser [doc]); the codes are the SDK's default ones.
Creation honours ``Idempotency-Key``: the same key and body return the same task, the same key
with another body is a 409 [repo: runapi-ai/core-sdk README.md]. Callbacks are signed with
X-Callback-Id / -Timestamp / -Signature [doc].

Facts cited as [doc] are in docs/providers.md, section "RunAPI.ai".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import mimetypes
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.images import INPUT_FORMATS, sniff
from playground.sandbox.common import bearer, fault, json_body, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState, Stage

TASK_PATH = "/api/v1/flux_kontext/text_to_image"
MODELS = ("flux-kontext-max", "flux-kontext-pro")
RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
FIELDS = {
    "model",
    "prompt",
    "aspect_ratio",
    "output_format",
    "source_image_url",
    "enable_translation",
    "enable_prompt_expansion",
    "safety_tolerance",
    "watermark",
    "callback_url",
}
# The SDK v0.2.3 names, renamed in v0.2.5 "to align with the upstream Input Contract". Whether
# the live server still takes them is UNCERTAIN [doc]; the sandbox refuses them, naming the
# new field, so an adapter that regresses to the old vocabulary fails loudly here instead of in production.
RENAMED = {"input_image": "source_image_url", "prompt_upsampling": "enable_prompt_expansion", "upload_cn": None}
MAX_IDEMPOTENCY_KEY_CHARS = 512
FILE_LIFETIME = timedelta(days=1)  # "temporary file"; the real lifetime is not documented
MODERATED_MSG = "Content policy violation"  # the failure text in the SDK's tests
FAILED_MSG = "Image generation failed"
PROCESSING_AFTER = 0.3  # share of a job's duration spent "pending" before "processing"
SANDBOX_SECRETS = {"RUNAPI_CALLBACK_SECRET": base64.b64encode(b"sandbox-runapi-callback-secret").decode()}
# The SDK's default machine code per status [core-sdk js/src/errors.ts].
_CODES = {
    400: "validation",
    401: "authentication",
    402: "insufficient_credits",
    404: "not_found",
    409: "conflict",
    422: "validation",
    429: "rate_limit",
    500: "server_error",
    503: "service_unavailable",
    455: "service_unavailable",
}


def error(status: int, message: str, code: str = "") -> Response:
    """RunAPI's error answer: the HTTP status carries the meaning, the body says why."""
    body = {"error": {"code": _CODES.get(status, code or "error"), "message": message}}
    return JSONResponse(body, status_code=status)


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """The RunAPI protocol: task create/get and the Files API."""
    idempotent: dict[str, tuple[str, str]] = {}  # Idempotency-Key -> (body digest, task id)

    async def guard(request: Request, stage: Stage) -> Response | None:
        state.record(name, request.method, request.url.path, stage)
        if not state.key_ok(name, bearer(request)):
            return error(401, "Invalid or missing API key")
        return await fault(state, name, stage, error)

    async def create(request: Request) -> Response:
        denied = await guard(request, "create")
        if denied:
            return denied
        body = await json_body(request)
        if body is None:
            return error(400, "Request body must be a JSON object")
        problem = validate(body)
        if problem:
            return error(422, problem)
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
            return error(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key in idempotent:
            seen_digest, task_id = idempotent[key]
            if seen_digest != digest:
                return error(409, "Idempotency-Key was already used with a different request body")
            return _task_created(state.jobs[task_id], state)
        job = state.new_job(
            name,
            body["model"],
            body["prompt"],
            body,
            aspect_ratio=body.get("aspect_ratio"),
            output_format=body.get("output_format", "jpeg"),
            input_url=body.get("source_image_url"),
            callback_url=body.get("callback_url"),
        )
        if key is not None:
            idempotent[key] = (digest, job.id)
        schedule_callback(state, job, lambda j: callback(state, j, origin(request), label, name))
        return _task_created(job, state)

    async def get(request: Request) -> Response:
        denied = await guard(request, "status")
        if denied:
            return denied
        job = state.jobs.get(request.path_params["task_id"])
        if job is None or job.provider != name:
            return error(404, "Task not found")
        return JSONResponse(await task(state, job, origin(request), label), headers={"X-RunAPI-Task-Id": job.id})

    async def upload(request: Request) -> Response:
        denied = await guard(request, "upload")
        if denied:
            return denied
        body = await json_body(request)
        content, problem = await _file_content(state, body)
        if content is None:
            return error(422, problem)
        file_name = str((body or {}).get("file_name") or "upload")
        mime = _mime(content, file_name)
        file_id = state.add_file(content, mime, file_name)
        now = datetime.now(UTC)
        return JSONResponse(
            {
                "file_name": file_name,
                "url": f"{origin(request)}/files/{file_id}",
                "size_bytes": len(content),
                "mime_type": mime,
                "created_at": _iso(now),
                "expires_at": _iso(now + FILE_LIFETIME),
            }
        )

    return Starlette(
        routes=[
            Route(TASK_PATH, create, methods=["POST"]),
            Route(TASK_PATH + "/{task_id}", get, methods=["GET"]),
            Route("/api/v1/files", upload, methods=["POST"]),
        ]
    )


def validate(body: dict[str, Any]) -> str | None:
    """The first problem with a create body, in the SDK's validation words, or None."""
    for old, new in RENAMED.items():
        if old in body:
            return f"{old} is no longer supported; use {new}" if new else f"{old} is no longer supported"
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return f"Unknown parameter(s): {', '.join(unknown)}"
    if "model" not in body:
        return "model is required"
    if body["model"] not in MODELS:
        return f"model must be one of: {', '.join(MODELS)}"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt is required"
    if body.get("aspect_ratio", "16:9") not in RATIOS:
        return f"aspect_ratio must be one of: {', '.join(RATIOS)}"
    if body.get("output_format", "jpeg") not in ("jpeg", "png"):
        return "output_format must be one of: jpeg, png"
    return _validate_types(body)


def _validate_types(body: dict[str, Any]) -> str | None:
    for flag in ("enable_translation", "enable_prompt_expansion"):
        if flag in body and not isinstance(body[flag], bool):
            return f"{flag} must be a boolean"
    for text in ("watermark", "callback_url"):
        if text in body and not isinstance(body[text], str):
            return f"{text} must be a string"
    image = body.get("source_image_url")
    if image is not None and (not isinstance(image, str) or not image.startswith(("http://", "https://"))):
        return "source_image_url must be a single http(s) URL"
    tolerance = body.get("safety_tolerance", 2)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool):
        return "safety_tolerance must be an integer"
    high = 2 if image else 6
    if not 0 <= tolerance <= high:
        return f"safety_tolerance must be between 0 and {high} for {'editing' if image else 'generation'}"
    return None


def _task_created(job: SandboxJob, state: SandboxState) -> Response:
    body = {"id": job.id, "status": _status_word(job, state.clock())}
    return JSONResponse(body, headers={"X-RunAPI-Task-Id": job.id})


def _status_word(job: SandboxJob, now: float) -> str:
    if job.is_done(now):
        return "completed" if job.outcome == "success" else "failed"
    return "pending" if job.elapsed(now) < job.duration_s * PROCESSING_AFTER else "processing"


async def task(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    """The task object as GET returns it right now."""
    word = _status_word(job, state.clock())
    body: dict[str, Any] = {"id": job.id, "status": word}
    if word == "completed":
        url = await state.result_url(job, base, label)
        body["images"] = [{"url": url, "origin_url": url}]
    elif word == "failed":
        body["error"] = MODERATED_MSG if job.outcome == "moderate" else FAILED_MSG
    return body


async def callback(
    state: SandboxState, job: SandboxJob, base: str, label: str, name: str
) -> tuple[bytes, dict[str, str]]:
    """The signed final payload RunAPI POSTs to callback_url [doc]."""
    payload: dict[str, Any] = {"id": job.id, "status": "completed" if job.outcome == "success" else "failed"}
    if job.outcome == "success":
        url = await state.result_url(job, base, label)
        payload["images"] = [{"url": url, "origin_url": url}]
    else:
        payload["error"] = MODERATED_MSG if job.outcome == "moderate" else FAILED_MSG
    raw = json.dumps(payload).encode()
    delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()))
    secret = state.signing_secrets.get(name, SANDBOX_SECRETS["RUNAPI_CALLBACK_SECRET"])
    return raw, {
        "X-Callback-Id": delivery_id,
        "X-Callback-Timestamp": timestamp,
        "X-Callback-Signature": sign(delivery_id, timestamp, raw, secret),
    }


def sign(delivery_id: str, timestamp: str, raw: bytes, secret: str) -> str:
    """As RunAPI.ai docs's verify(): base64 HMAC-SHA256 over `${id}.${ts}.${rawBody}` with the base64-decoded secret.

    The id is the X-Callback-Id value (UNCERTAIN whether it is the task id [doc]).
    """
    message = f"{delivery_id}.{timestamp}.".encode() + raw
    return base64.b64encode(hmac.new(base64.b64decode(secret), message, hashlib.sha256).digest()).decode()


async def _file_content(state: SandboxState, body: dict[str, Any] | None) -> tuple[bytes | None, str]:
    """The bytes a Files API source names: {type: base64, data} or {type: url, url} [core-sdk files.py]."""
    source = (body or {}).get("source")
    if not isinstance(source, dict):
        return None, "source is required: {type: 'url', url} or {type: 'base64', data}"
    if source.get("type") == "base64":
        try:
            return base64.b64decode(str(source.get("data") or ""), validate=True) or None, "source.data is empty"
        except (binascii.Error, ValueError):
            return None, "source.data must be base64"
    url = source.get("url")
    if source.get("type") == "url" and isinstance(url, str) and url.startswith(("http://", "https://")):
        content = await state.fetch_input(url)
        return content, f"could not download {url}"
    return None, "source.type must be url or base64"


def _mime(content: bytes, file_name: str) -> str:
    found = sniff(content)
    if found and found[0] in INPUT_FORMATS:
        return INPUT_FORMATS[found[0]]
    return mimetypes.guess_type(file_name)[0] or "application/octet-stream"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
