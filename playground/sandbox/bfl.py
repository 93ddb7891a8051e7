"""Sandbox of the official BFL API, written from docs.bfl.ai, its OpenAPI and BFL's skills repo [doc].

FastAPI-style answers: 422 ``{"detail": [{"loc", "msg", "type"}]}`` for a bad body, ``{"detail": "..."}``
for other errors, 403 for a missing or wrong ``x-key``. The create answer's ``polling_url`` names a
regional path (``/us1/v1/get_result``), as the live API names a regional host, so a client that builds
the URL itself instead of following it is caught. Webhooks are signed with the request's own
``webhook_secret``.

Facts cited as [doc] are in docs/providers.md, section "Black Forest Labs".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator
from pydantic import ValidationError as PydanticValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.images import INPUT_FORMATS, sniff
from playground.sandbox.common import fault, json_body, mount_url, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState

MODELS = {"flux-kontext-pro": "flux-kontext-pro", "flux-kontext-max": "flux-kontext-max"}
COST_CREDITS = {"flux-kontext-pro": 4.0, "flux-kontext-max": 8.0}  # [docs.bfl.ml/quick_start/pricing]
REGION = "us1"  # the live API hands out e.g. https://api.us1.bfl.ai/v1/get_result?id=...
MIN_RATIO, MAX_RATIO = 9 / 21, 21 / 9
PENDING_SHARE = 0.3  # the first 30 % of a job reads "Pending", the rest "Generating"
MODERATION_REASONS = ["Derivative Works Filter"]  # a reason seen in third-party fakes of get_result
FAILURE_DETAIL = "Image generation failed"
SANDBOX_SECRETS = {"BFL_WEBHOOK_SECRET": "sandbox-bfl-webhook-secret"}  # lets sandbox mode ask for webhooks
_RATIO = re.compile(r"^(\d+):(\d+)$")


class KontextInputs(BaseModel):
    """FluxKontextProInputs (also [max]), strict: unknown fields and loose types are refused."""

    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[StrictStr, Field(min_length=1)]
    input_image: StrictStr | None = None
    input_image_2: StrictStr | None = None  # experimental multi-reference
    input_image_3: StrictStr | None = None
    input_image_4: StrictStr | None = None
    seed: StrictInt | None = None
    aspect_ratio: StrictStr | None = None
    output_format: Literal["jpeg", "png", "webp"] | None = "png"
    prompt_upsampling: StrictBool = False
    safety_tolerance: Annotated[StrictInt, Field(ge=0, le=6)] = 2
    webhook_url: Annotated[StrictStr, Field(min_length=1, max_length=2083)] | None = None
    webhook_secret: StrictStr | None = None

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio_in_range(cls, value: str | None) -> str | None:
        match = _RATIO.match(value) if value is not None else None
        if value is not None and (match is None or int(match[2]) == 0):
            raise ValueError("aspect_ratio must look like W:H, e.g. 16:9")
        if match is not None and not MIN_RATIO - 1e-9 <= int(match[1]) / int(match[2]) <= MAX_RATIO + 1e-9:
            raise ValueError("aspect_ratio must be between 21:9 and 9:21")
        return value

    @field_validator("input_image")
    @classmethod
    def _url_or_raw_base64(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")) and decode_image(value) is None:
            raise ValueError("input_image must be an http(s) URL or a base64-encoded JPEG, PNG or WebP image")
        return value


def error(status: int, message: str, code: str = "") -> Response:
    """FastAPI's HTTPException shape: ``{"detail": message}``."""
    return JSONResponse({"detail": message}, status_code=status)


def invalid(detail: list[dict[str, Any]]) -> Response:
    """FastAPI's 422 HTTPValidationError."""
    return JSONResponse({"detail": detail}, status_code=422)


def validate(body: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The 422 ``detail`` list for a create body (locations under "body", as FastAPI reports them), or None."""
    if body is None:
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary or object", "type": "dict_type"}]
    try:
        KontextInputs.model_validate(body)
    except PydanticValidationError as exc:
        return [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
    return None


def decode_image(value: str) -> tuple[bytes, str] | None:
    """(bytes, mime) of a raw base64 image; None for anything else, a data: URI included."""
    try:
        content = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    found = sniff(content)
    return (content, INPUT_FORMATS[found[0]]) if found and found[0] in INPUT_FORMATS else None


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """The BFL protocol for provider ``name``."""

    def denied(request: Request) -> Response | None:
        key = request.headers.get("x-key")
        if not key:
            return error(403, "Not authenticated")
        return None if state.key_ok(name, key) else error(403, "Not authenticated - Invalid Authentication")

    async def create(request: Request) -> Response:
        state.record(name, "POST", request.url.path, "create")
        endpoint = request.path_params["endpoint"]
        if endpoint not in MODELS:  # routing comes before auth in FastAPI
            return error(404, "Not Found")
        refused = denied(request) or await fault(state, name, "create", error)
        if refused:
            return refused
        body = await json_body(request)
        problems = validate(body)
        if problems or body is None:
            return invalid(problems or [])
        job = _new_job(state, name, MODELS[endpoint], body, origin(request))
        schedule_callback(state, job, lambda j: callback(state, j, origin(request), label))
        return JSONResponse(_accepted(job, body, mount_url(request)))

    async def get_result(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "status")
        refused = denied(request) or await fault(state, name, "status", error)
        if refused:
            return refused
        task_id = request.query_params.get("id")
        if not task_id:
            return invalid([{"loc": ["query", "id"], "msg": "Field required", "type": "missing"}])
        job = state.jobs.get(task_id)
        if job is None or job.provider != name:
            return JSONResponse(
                {
                    "id": task_id,
                    "status": "Task not found",
                    "result": None,
                    "progress": None,
                    "details": None,
                    "preview": None,
                }
            )
        return JSONResponse(await result(state, job, origin(request), label))

    return Starlette(
        routes=[
            Route("/v1/get_result", get_result, methods=["GET"]),
            Route(f"/{REGION}/v1/get_result", get_result, methods=["GET"]),
            Route("/v1/{endpoint}", create, methods=["POST"]),
        ]
    )


def _new_job(state: SandboxState, name: str, model: str, body: dict[str, Any], base: str) -> SandboxJob:
    image = body.get("input_image")
    if isinstance(image, str) and not image.startswith(("http://", "https://")):
        content, mime = decode_image(image) or (b"", "image/png")
        image = f"{base}/files/{state.add_file(content, mime, 'input')}"
    return state.new_job(
        name,
        model,
        body["prompt"],
        body,
        aspect_ratio=body.get("aspect_ratio"),
        output_format=body.get("output_format") or "png",
        input_url=image,
        callback_url=body.get("webhook_url"),
    )


def _accepted(job: SandboxJob, body: dict[str, Any], mount: str) -> dict[str, Any]:
    """AsyncResponse, or AsyncWebhookResponse (id, status, webhook_url: no polling_url) with a webhook."""
    cost = COST_CREDITS[job.model]
    if body.get("webhook_url"):
        # UNCERTAIN [doc]: the OpenAPI names a status field here but not its values.
        return {"id": job.id, "status": "Pending", "webhook_url": body["webhook_url"], "cost": cost}
    return {"id": job.id, "polling_url": f"{mount}/{REGION}/v1/get_result?id={job.id}", "cost": cost}


async def result(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    """The ResultResponse of a job right now: {id, status, result, progress, details, preview}."""
    now = state.clock()
    answer: dict[str, Any] = {
        "id": job.id,
        "status": "Pending",
        "result": None,
        "progress": None,
        "details": None,
        "preview": None,
    }
    if not job.is_done(now):
        share = min(1.0, job.elapsed(now) / job.duration_s) if job.duration_s else 0.0
        if share >= PENDING_SHARE:
            answer.update(status="Generating", progress=round(share, 2))
        return answer
    if job.outcome == "success":
        sample = await state.result_url(job, base, label)
        answer.update(
            status="Ready",
            progress=1.0,
            result={
                "sample": sample,
                "prompt": job.prompt,
                "seed": job.body.get("seed"),
                "start_time": None,
                "end_time": None,
                "duration": job.duration_s,
            },
        )
    elif job.outcome == "moderate":
        answer.update(status="Content Moderated", details={"Moderation Reasons": MODERATION_REASONS})
    else:
        # UNCERTAIN [doc]: the OpenAPI has ``details``; the skills repo shows ``error`` instead.
        answer.update(status="Error", details={"error": FAILURE_DETAIL})
    return answer


async def callback(state: SandboxState, job: SandboxJob, base: str, label: str) -> tuple[bytes, dict[str, str]]:
    """The webhook delivery, per BFL's skills repo (UNCERTAIN [doc]): Ready with ``result``, or
    Error with ``error``/``message``; ``X-BFL-Signature: sha256=<hex HMAC of the raw body>``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if job.outcome == "success":
        sample = await state.result_url(job, base, label)
        payload: dict[str, Any] = {
            "id": job.id,
            "status": "Ready",
            "timestamp": stamp,
            "result": {"sample": sample, "prompt": job.prompt, "seed": job.body.get("seed")},
        }
    elif job.outcome == "moderate":
        payload = {
            "id": job.id,
            "status": "Error",
            "error": "content_policy_violation",
            "message": "The prompt violated content policy",
            "timestamp": stamp,
        }
    else:
        payload = {
            "id": job.id,
            "status": "Error",
            "error": "generation_failed",
            "message": FAILURE_DETAIL,
            "timestamp": stamp,
        }
    body = json.dumps(payload).encode()
    secret = state.signing_secrets.get(job.provider) or job.body.get("webhook_secret")
    if not isinstance(secret, str) or not secret:
        return body, {}
    return body, {"X-BFL-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
