"""Sandbox of fal.ai's queue API for FLUX.1 Kontext, written from [doc] and fal's queue docs.

Submit is POST /<endpoint-id> with the model input as the body (``?fal_webhook=`` for a callback); the
answer carries status/response/cancel URLs on the owner/app only (``/fal-ai/flux-pro/requests/{id}``).
Status answers 202 while IN_QUEUE / IN_PROGRESS and 200 when COMPLETED; the result is GET on the
response URL. Errors are FastAPI-style ``{"detail": ...}``; validation errors list typed objects
``{"loc", "msg", "type"}``. Stricter than fal on one point: unknown fields are refused (pydantic's
``extra_forbidden``) so a misspelt field cannot pass silently. Webhooks are signed with ED25519 over
``request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)`` (UNCERTAIN, 3rd-party code [doc]).

Facts cited as [doc] are in docs/providers.md, section "fal.ai".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.sandbox.common import fault, json_body, mount_url, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState
from playground.sandbox.draw import size_for

APP = "fal-ai/flux-pro"
ENDPOINTS: dict[str, tuple[str, bool]] = {  # endpoint id -> (model, is_edit)
    "fal-ai/flux-pro/kontext": ("flux-kontext-pro", True),
    "fal-ai/flux-pro/kontext/max": ("flux-kontext-max", True),
    "fal-ai/flux-pro/kontext/text-to-image": ("flux-kontext-pro", False),
    "fal-ai/flux-pro/kontext/max/text-to-image": ("flux-kontext-max", False),
}
RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
FORMATS = ("jpeg", "png")
SAFETY = ("1", "2", "3", "4", "5", "6")
TEXT_FIELDS = {
    "prompt",
    "seed",
    "guidance_scale",
    "sync_mode",
    "num_images",
    "output_format",
    "safety_tolerance",
    "enhance_prompt",
    "aspect_ratio",
}
EDIT_FIELDS = TEXT_FIELDS | {"image_url"}
QUEUED_FRACTION = 0.3  # the first part of a job's life is spent IN_QUEUE
USER_ID = "sandbox-user"
# A fixed signing key, so SANDBOX_SECRETS can name its public half; the sandbox is no place for secrets.
_PRIVATE_KEY_HEX = "df7305ff38ed1d8a73402b67b94e6a218d8213b05d286639a49095fd44fd1b3a"
SANDBOX_SECRETS = {"FAL_WEBHOOK_PUBLIC_KEYS": "2ysD0qzlnjlHBTaQA58gW_Zzdu2liFvPNDLaV95a7Mo"}
FAIL_DETAIL = {
    "loc": ["body", "prompt"],
    "msg": "The downstream model failed to generate an image (sandbox:fail).",
    "type": "downstream_service_error",
}
Detail = dict[str, Any]


def error(status: int, message: str, code: str = "") -> Response:
    """fal's error shape: FastAPI's ``{"detail": ...}`` with the HTTP status."""
    return JSONResponse({"detail": message}, status_code=status)


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """The fal queue protocol for provider ``name``."""

    def authorized(request: Request) -> Response | None:
        value = request.headers.get("authorization", "")
        presented = value[4:].strip() if value.startswith("Key ") else None
        if not state.key_ok(name, presented):
            # Sandbox wording; fal's exact 401 text is not documented.
            return error(401, "No user found for Key ID and Secret" if presented else "Missing Authorization header")
        return None

    async def submit(request: Request, model: str, is_edit: bool) -> Response:
        state.record(name, "POST", request.url.path, "create")
        denied = authorized(request) or await fault(state, name, "create", error)
        if denied:
            return denied
        body = await json_body(request)
        problems = validate(body, edit=is_edit)
        if problems or body is None:
            return JSONResponse({"detail": problems}, status_code=422)
        input_url, problem = _input_url(state, body.get("image_url"), origin(request))
        if problem:
            return JSONResponse({"detail": [problem]}, status_code=422)
        job = state.new_job(
            name,
            model,
            body["prompt"],
            body,
            aspect_ratio=body.get("aspect_ratio", None if is_edit else "1:1"),
            output_format=body.get("output_format", "jpeg"),
            input_url=input_url,
            callback_url=request.query_params.get("fal_webhook"),
        )
        schedule_callback(state, job, lambda j: callback(state, j, origin(request), label))
        return JSONResponse(_submitted(job, mount_url(request)))

    async def status(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "status")
        denied = authorized(request) or await fault(state, name, "status", error)
        if denied:
            return denied
        job = _job(state, name, request)
        if job is None:
            return error(404, "Request not found")
        body, code = queue_status(state, job, mount_url(request), logs=request.query_params.get("logs") == "1")
        return JSONResponse(body, status_code=code)

    async def result(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "result")
        denied = authorized(request)
        if denied:
            return denied
        job = _job(state, name, request)
        if job is None:
            return error(404, "Request not found")
        if not job.is_done(state.clock()):
            return error(400, "Request is still in progress")
        if job.outcome == "fail":
            return JSONResponse({"detail": [FAIL_DETAIL]}, status_code=422)
        return JSONResponse(await output(state, job, origin(request), label))

    async def cancel(request: Request) -> Response:
        state.record(name, "PUT", request.url.path, "cancel")
        denied = authorized(request)
        if denied:
            return denied
        job = _job(state, name, request)
        if job is None:
            return error(404, "Request not found")
        if job.is_done(state.clock()):
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    async def unknown(request: Request) -> Response:
        state.record(name, request.method, request.url.path, "create" if request.method == "POST" else "other")
        # UNCERTAIN: fal's answer for an unknown endpoint id is not documented; a FastAPI 404 here.
        return authorized(request) or error(404, "Not Found")

    requests = f"/{APP}/requests/{{request_id}}"

    def submit_to(model: str, is_edit: bool) -> Any:
        async def endpoint(request: Request) -> Response:
            return await submit(request, model, is_edit)

        return endpoint

    routes = [Route(f"/{e}", submit_to(*ENDPOINTS[e]), methods=["POST"]) for e in ENDPOINTS]
    routes += [
        Route(f"{requests}/status", status, methods=["GET"]),
        Route(f"{requests}/cancel", cancel, methods=["PUT"]),
        Route(requests, result, methods=["GET"]),
        Route("/{path:path}", unknown, methods=["GET", "POST", "PUT"]),
    ]
    return Starlette(routes=routes)


def validate(body: dict[str, Any] | None, *, edit: bool) -> list[Detail]:
    """Every problem with a model input, as pydantic-style detail objects (empty when valid)."""
    if body is None:
        return [_detail([], "Input should be a valid dictionary", "dict_type")]
    allowed = EDIT_FIELDS if edit else TEXT_FIELDS
    problems = [_detail([k], "Extra inputs are not permitted", "extra_forbidden") for k in sorted(set(body) - allowed)]
    problems += _required(body, edit)
    for key, check in _CHECKS.items():
        if key in body and (problem := check(body[key])):
            problems.append(_detail([key], *problem))
    return problems


def _required(body: dict[str, Any], edit: bool) -> list[Detail]:
    problems = []
    for key in ("prompt", "image_url") if edit else ("prompt",):
        value = body.get(key)
        if key not in body:
            problems.append(_detail([key], "Field required", "missing"))
        elif not isinstance(value, str):
            problems.append(_detail([key], "Input should be a valid string", "string_type"))
        elif not value.strip():
            problems.append(_detail([key], "String should have at least 1 character", "string_too_short"))
    if (
        edit
        and isinstance(body.get("image_url"), str)
        and not body["image_url"].startswith(("http://", "https://", "data:image/"))
    ):
        problems.append(_detail(["image_url"], "Input should be a valid URL or a data URI", "url_parsing"))
    return problems


def _integer(low: int, high: int) -> Any:
    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return "Input should be a valid integer", "int_type"
        return None if low <= value <= high else (f"Input should be between {low} and {high}", "less_than_equal")

    return check


def _number(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "Input should be a valid number", "float_type"
    if value < 1:
        return "Input should be greater than or equal to 1", "greater_than_equal"
    return None if value <= 20 else ("Input should be less than or equal to 20", "less_than_equal")


def _boolean(value: Any) -> tuple[str, str] | None:
    return None if isinstance(value, bool) else ("Input should be a valid boolean", "bool_type")


def _one_of(options: tuple[str, ...]) -> Any:
    def check(value: Any) -> tuple[str, str] | None:
        if isinstance(value, str) and value in options:
            return None
        listed = ", ".join(f"'{o}'" for o in options[:-1]) + f" or '{options[-1]}'"
        return f"Input should be {listed}", "enum"

    return check


_CHECKS = {
    "seed": _integer(0, 2**63 - 1),
    "num_images": _integer(1, 4),
    "guidance_scale": _number,
    "sync_mode": _boolean,
    "enhance_prompt": _boolean,
    "output_format": _one_of(FORMATS),
    "safety_tolerance": _one_of(SAFETY),  # a STRING enum; an integer is refused like pydantic's Literal
    "aspect_ratio": _one_of(RATIOS),
}


def queue_status(state: SandboxState, job: SandboxJob, base: str, *, logs: bool) -> tuple[dict[str, Any], int]:
    """(body, HTTP status) of GET .../status: 202 while queued or running, 200 once COMPLETED."""
    now = state.clock()
    body: dict[str, Any] = {"response_url": f"{base}/{APP}/requests/{job.id}"}
    if job.is_done(now):
        body.update(status="COMPLETED", logs=_logs(job) if logs else None, metrics={"inference_time": job.duration_s})
        if job.outcome == "fail":
            body.update(error="Invalid status code: 422", error_type=FAIL_DETAIL["type"])
        return body, 200
    if job.elapsed(now) < job.duration_s * QUEUED_FRACTION:
        body.update(status="IN_QUEUE", queue_position=0)
    else:
        body.update(status="IN_PROGRESS", logs=_logs(job) if logs else None)
    return body, 202


async def output(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    """The model output: fal blanks an image its safety checker flags and says so in has_nsfw_concepts."""
    flagged = job.outcome == "moderate"
    url = _blank(state, job, base) if flagged else await state.result_url(job, base, label)
    content = state.files[f"result-{job.id}"][0]
    with Image.open(io.BytesIO(content)) as img:
        width, height = img.size
    mime = "image/png" if job.output_format == "png" else "image/jpeg"
    if job.body.get("sync_mode") is True:
        url = f"data:{mime};base64,{base64.b64encode(content).decode()}"
    image = {"url": url, "width": width, "height": height, "content_type": mime}
    count = int(job.body.get("num_images", 1))  # type: ignore[call-overload]
    return {
        "images": [image] * count,
        "timings": {"inference": job.duration_s},
        "seed": job.body.get("seed", int(job.id[:8], 16)),
        "has_nsfw_concepts": [flagged] * count,
        "prompt": job.prompt,
    }


async def callback(state: SandboxState, job: SandboxJob, base: str, label: str) -> tuple[bytes, dict[str, str]]:
    """The webhook fal POSTs when a job ends, signed [https://fal.ai/docs/model-endpoints/webhooks]."""
    body: dict[str, Any] = {"request_id": job.id, "gateway_request_id": job.id}
    if job.outcome == "fail":
        body.update(status="ERROR", error="Invalid status code: 422", payload={"detail": [FAIL_DETAIL]})
    else:
        body.update(status="OK", payload=await output(state, job, base, label), error=None)
    raw = json.dumps(body).encode()
    return raw, sign_delivery(raw, job.id, str(int(time.time())))


def sign_delivery(raw: bytes, request_id: str, timestamp: str, user_id: str = USER_ID) -> dict[str, str]:
    """The X-Fal-Webhook-* headers of one delivery, signed with the sandbox's ED25519 key."""
    message = f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(raw).hexdigest()}".encode()
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(_PRIVATE_KEY_HEX))
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": timestamp,
        "X-Fal-Webhook-Signature": key.sign(message).hex(),
    }


def _submitted(job: SandboxJob, base: str) -> dict[str, Any]:
    requests = f"{base}/{APP}/requests/{job.id}"
    body = {
        "status": "IN_QUEUE",
        "request_id": job.id,
        "response_url": requests,
        "status_url": f"{requests}/status",
        "cancel_url": f"{requests}/cancel",
        "queue_position": 0,
    }
    if job.callback_url:
        body["gateway_request_id"] = job.id
    return body


def _input_url(state: SandboxState, value: Any, base: str) -> tuple[str | None, Detail | None]:
    """Where the sandbox reads the input image: the URL itself, or a data URI kept as a served file."""
    if not isinstance(value, str) or not value.startswith("data:"):
        return value if isinstance(value, str) else None, None
    header, _, data = value.partition(",")
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None, _detail(["image_url"], "Could not decode the data URI", "image_load_error")
    return f"{base}/files/{state.add_file(content, header[5:].split(';')[0] or 'image/png')}", None


def _blank(state: SandboxState, job: SandboxJob, base: str) -> str:
    out = io.BytesIO()
    Image.new("RGB", size_for(job.aspect_ratio, None)).save(out, format="PNG" if job.output_format == "png" else "JPEG")
    state.files[f"result-{job.id}"] = (out.getvalue(), "image/png" if job.output_format == "png" else "image/jpeg")
    return f"{base}/files/result-{job.id}.{'png' if job.output_format == 'png' else 'jpg'}"


def _job(state: SandboxState, name: str, request: Request) -> SandboxJob | None:
    job = state.jobs.get(request.path_params["request_id"])
    return job if job is not None and job.provider == name else None


def _logs(job: SandboxJob) -> list[dict[str, str]]:
    return [{"message": f"sandbox: running {job.model}", "level": "INFO", "source": "user", "timestamp": ""}]


def _detail(loc: list[str], msg: str, kind: str) -> Detail:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}
