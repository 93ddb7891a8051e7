"""Sandbox of Replicate's predictions API for the official FLUX.1 Kontext models [doc].

POST /v1/models/black-forest-labs/<model>/predictions answers 201 with a prediction object; GET
/v1/predictions/<id> reads it; status runs starting -> processing -> succeeded | failed | canceled.
Errors are problem details {"title", "detail", "status"} (RFC 7807, as replicate-python's
ReplicateError reads them). Webhooks POST the final prediction, signed the Standard Webhooks way
[https://replicate.com/docs/topics/webhooks/verify-webhook]; this module signs independently of
the adapter, so a mismatch between the two shows up in the tests.

Facts cited as [doc] are in docs/providers.md, section "Replicate".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.sandbox.common import fault, json_body, mount_url, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState

OWNER = "black-forest-labs"
MODELS = {"flux-kontext-pro", "flux-kontext-max"}
DEFAULT_RATIO = "match_input_image"
RATIOS = (
    DEFAULT_RATIO,
    "1:1",
    "16:9",
    "9:16",
    "4:3",
    "3:4",
    "3:2",
    "2:3",
    "4:5",
    "5:4",
    "21:9",
    "9:21",
    "2:1",
    "1:2",
)
FORMATS = {"jpg": "jpeg", "png": "png"}  # Replicate's names -> the sandbox drawer's
DEFAULT_FORMAT = "png"
TOP_FIELDS = {"input", "webhook", "webhook_events_filter"}
# UNCERTAIN: Cog may ignore unknown inputs; the sandbox refuses them so a misspelt field (inputImage,
# aspectRatio) is caught here instead of being silently dropped by the real API.
INPUT_FIELDS = {
    "prompt",
    "input_image",
    "aspect_ratio",
    "output_format",
    "safety_tolerance",
    "prompt_upsampling",
    "seed",
}
EVENTS = {"start", "output", "logs", "completed"}
_DATA_URI = re.compile(r"^data:image/(jpeg|png|gif|webp);base64,(.+)$", re.DOTALL)
TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Payment required",
    404: "Not found",
    422: "Input validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
# GUESS: the wording of Replicate's safety checker (E005) and of an internal failure (E6716).
FAILURES = {
    "moderate": "The input or output was flagged as sensitive. Please try again with different inputs. (E005)",
    "fail": "Prediction failed: unexpected error handling prediction (E6716)",
}
STARTING_SHARE = 0.2  # the first fifth of a job reads "starting" (queued, booting), the rest "processing"
MAX_WAIT_S = 60  # "Prefer: wait" holds the request at most 60 s [doc]
SECRET_ENV = "REPLICATE_WEBHOOK_SECRET"
SANDBOX_SECRETS = {SECRET_ENV: "whsec_c2FuZGJveC1yZXBsaWNhdGUtd2ViaG9vay1rZXktMzI="}


def error(status: int, detail: str, code: str = "") -> Response:
    """Replicate's problem-details error (UNCERTAIN exact fields [doc])."""
    body = {"title": TITLES.get(status, "Error"), "detail": detail, "status": status}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """Replicate's predictions API for provider ``name``."""
    canceled: set[str] = set()

    def denied(request: Request) -> Response | None:
        if not state.key_ok(name, _token(request)):
            return error(401, "You did not pass a valid authentication token")
        return None

    async def create(request: Request) -> Response:
        state.record(name, "POST", request.url.path, "create")
        stop = denied(request) or await fault(state, name, "create", error)
        if stop:
            return stop
        owner, model = request.path_params["owner"], request.path_params["model"]
        if owner != OWNER or model not in MODELS:
            return error(404, f"Model {owner}/{model} not found")
        body = await json_body(request)
        if body is None:
            return error(400, "The request body is not a JSON object")
        problem = validate(body)
        if problem:
            return error(422, problem)
        job = _new_job(state, name, model, body, origin(request))
        schedule_callback(state, job, lambda j: webhook(state, j, mount_url(request), label, name, canceled))
        await _prefer_wait(state, job, request.headers.get("prefer", ""))
        return JSONResponse(await prediction(state, job, mount_url(request), label, canceled), status_code=201)

    async def get(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "status")
        stop = denied(request) or await fault(state, name, "status", error)
        if stop:
            return stop
        job = _find(state, name, request.path_params["id"])
        if job is None:
            return error(404, "Prediction not found")
        return JSONResponse(await prediction(state, job, mount_url(request), label, canceled))

    async def cancel(request: Request) -> Response:
        state.record(name, "POST", request.url.path, "cancel")
        stop = denied(request)
        if stop:
            return stop
        job = _find(state, name, request.path_params["id"])
        if job is None:
            return error(404, "Prediction not found")
        if not job.is_done(state.clock()):
            canceled.add(job.id)
        return JSONResponse(await prediction(state, job, mount_url(request), label, canceled))

    async def secret(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "secret")
        return denied(request) or JSONResponse({"key": _secret(state, name)})

    return Starlette(
        routes=[
            Route("/v1/models/{owner}/{model}/predictions", create, methods=["POST"]),
            Route("/v1/predictions/{id}", get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", cancel, methods=["POST"]),
            Route("/v1/webhooks/default/secret", secret, methods=["GET"]),
        ]
    )


def validate(body: dict[str, Any]) -> str | None:
    """The first problem with a create body, as a problem ``detail``, or None."""
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        return f"Additional property {unknown[0]} is not allowed"
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        return "input is required and must be an object"
    return _validate_input(inputs) or _validate_webhook(body)


def _validate_input(inputs: dict[str, Any]) -> str | None:
    unknown = sorted(set(inputs) - INPUT_FIELDS)
    if unknown:
        return f"input: Additional property {unknown[0]} is not allowed"
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "input: prompt is required"
    if inputs.get("aspect_ratio", DEFAULT_RATIO) not in RATIOS:
        return f"input.aspect_ratio: aspect_ratio must be one of the following: {', '.join(RATIOS)}"
    if inputs.get("output_format", DEFAULT_FORMAT) not in FORMATS:
        return 'input.output_format: output_format must be one of the following: "jpg", "png"'
    if "prompt_upsampling" in inputs and not isinstance(inputs["prompt_upsampling"], bool):
        return "input.prompt_upsampling: Invalid type. Expected: boolean"
    if "seed" in inputs and not _is_int(inputs["seed"]):
        return "input.seed: Invalid type. Expected: integer"
    return _validate_image(inputs.get("input_image")) or _validate_safety(inputs)


def _validate_image(image: Any) -> str | None:
    if image is None:
        return None
    if not isinstance(image, str):
        return "input.input_image: Invalid type. Expected: string"
    if image.startswith(("http://", "https://")):
        return None
    if _decode_data_uri(image) is None:
        return "input.input_image: Does not match format 'uri' (an http(s) URL or a base64 data: URI)"
    return None


def _validate_safety(inputs: dict[str, Any]) -> str | None:
    value = inputs.get("safety_tolerance", 2)
    if not _is_int(value):
        return "input.safety_tolerance: Invalid type. Expected: integer"
    # UNCERTAIN: the model documents "2 is the maximum when input images are used"; refused here.
    high = 2 if inputs.get("input_image") else 6
    if not 0 <= value <= high:
        return f"input.safety_tolerance: Must be between 0 and {high}"
    return None


def _validate_webhook(body: dict[str, Any]) -> str | None:
    hook = body.get("webhook")
    if hook is not None and (not isinstance(hook, str) or not hook.startswith(("http://", "https://"))):
        return "webhook: Does not match format 'uri'"
    events = body.get("webhook_events_filter")
    if events is not None and (not isinstance(events, list) or not set(events) <= EVENTS):
        return f"webhook_events_filter: items must be one of the following: {', '.join(sorted(EVENTS))}"
    return None


def _new_job(state: SandboxState, name: str, model: str, body: dict[str, Any], base: str) -> SandboxJob:
    inputs = body["input"]
    ratio = inputs.get("aspect_ratio", DEFAULT_RATIO)
    return state.new_job(
        name,
        model,
        inputs["prompt"],
        body,
        aspect_ratio=None if ratio == DEFAULT_RATIO else ratio,
        output_format=FORMATS[inputs.get("output_format", DEFAULT_FORMAT)],
        input_url=_input_url(state, inputs.get("input_image"), base),
        callback_url=body.get("webhook") if "completed" in (body.get("webhook_events_filter") or EVENTS) else None,
    )


def _input_url(state: SandboxState, image: str | None, base: str) -> str | None:
    """Where the sandbox reads the input image: the URL itself, or a data: URI saved as a file."""
    if image is None or image.startswith(("http://", "https://")):
        return image
    decoded = _decode_data_uri(image)
    assert decoded is not None  # validated before
    return f"{base}/files/{state.add_file(decoded[0], decoded[1], 'input')}"


async def prediction(state: SandboxState, job: SandboxJob, base: str, label: str, canceled: set[str]) -> dict[str, Any]:
    """The prediction object of a job, as it is right now."""
    now = state.clock()
    elapsed = job.elapsed(now)
    created = time.time() - elapsed
    status = _status(job, now, canceled)
    body: dict[str, Any] = {
        "id": job.id,
        "model": f"{OWNER}/{job.model}",
        "version": "hidden",
        "input": job.body["input"],
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": status,
        "created_at": _iso(created),
        "started_at": None,
        "completed_at": None,
        # No "stream" URL: these image models have no streaming output to serve.
        "urls": {"get": f"{base}/v1/predictions/{job.id}", "cancel": f"{base}/v1/predictions/{job.id}/cancel"},
        "metrics": {},
    }
    if status != "starting":
        body.update(started_at=_iso(created + job.duration_s * STARTING_SHARE), logs="Running FLUX.1 Kontext...\n")
    if status in {"succeeded", "failed", "canceled"}:
        body.update(completed_at=_iso(created + min(elapsed, job.duration_s)))
        predict_s = round(job.duration_s * (1 - STARTING_SHARE), 3)
        body["metrics"] = {"predict_time": predict_s, "total_time": job.duration_s}
    if status == "succeeded":
        body["output"] = await state.result_url(job, origin_of(base), label)
    elif status == "failed":
        body["error"] = FAILURES.get(job.outcome, FAILURES["fail"])
    return body


def _status(job: SandboxJob, now: float, canceled: set[str]) -> str:
    if job.id in canceled:
        return "canceled"
    if job.is_done(now):
        return "succeeded" if job.outcome == "success" else "failed"
    return "starting" if job.elapsed(now) < job.duration_s * STARTING_SHARE else "processing"


async def webhook(
    state: SandboxState, job: SandboxJob, base: str, label: str, name: str, canceled: set[str]
) -> tuple[bytes, dict[str, str]]:
    """The "completed" delivery: the final prediction, signed with the account's whsec_ secret."""
    while not job.is_done(state.clock()):  # the timer may wake a hair before the job's clock says done
        await asyncio.sleep(0.01)
    body = json.dumps(await prediction(state, job, base, label, canceled)).encode()
    webhook_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    signature = sign(_secret(state, name), webhook_id, timestamp, body)
    return body, {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}"}


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: base64(HMAC-SHA256(b64decode(secret minus whsec_), "id.timestamp.body"))."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, webhook_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


async def _prefer_wait(state: SandboxState, job: SandboxJob, prefer: str) -> None:
    """Hold the answer while the job runs, up to N s, for "Prefer: wait" / "Prefer: wait=N"."""
    match = re.fullmatch(r"\s*wait(?:=(\d+))?\s*", prefer)
    if not match:
        return
    deadline = state.clock() + min(int(match.group(1) or MAX_WAIT_S), MAX_WAIT_S)
    while not job.is_done(state.clock()) and state.clock() < deadline:
        await asyncio.sleep(0.02)


def _find(state: SandboxState, name: str, job_id: str) -> SandboxJob | None:
    job = state.jobs.get(job_id)
    return job if job is not None and job.provider == name else None


def _token(request: Request) -> str | None:
    """The API token from "Bearer <token>" (or the older "Token <token>" scheme)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() in {"bearer", "token"} else None


def _secret(state: SandboxState, name: str) -> str:
    return state.signing_secrets.get(name, SANDBOX_SECRETS[SECRET_ENV])


def _decode_data_uri(value: str) -> tuple[bytes, str] | None:
    match = _DATA_URI.match(value)
    if not match:
        return None
    try:
        return base64.b64decode(match.group(2), validate=True), f"image/{match.group(1)}"
    except (binascii.Error, ValueError):
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def origin_of(base: str) -> str:
    """scheme://host:port of a mount URL (result files are served at the server's root)."""
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
