"""Sandbox of the KIE AI protocol (also FluxAPI.ai), written from FluxAPI.ai docs/004 and docs.kie.ai.

Errors come back as {code, msg, data: null}. Like the live API, most of them arrive with HTTP 200
and the real status in ``code``; server errors use the HTTP status too.

Facts cited as [doc] are in docs/providers.md, section "KIE AI" (and "FluxAPI.ai").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.sandbox.common import bearer, fault, json_body, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState

MODELS = {"flux-kontext-pro", "flux-kontext-max"}
RATIOS = {
    "21:9",
    "16:9",
    "4:3",
    "1:1",
    "3:4",
    "9:16",
    "16:21",
}  # 16:21 is in the quickstarts [doc: FluxAPI.ai]
FIELDS = {
    "prompt",
    "model",
    "aspectRatio",
    "inputImage",
    "outputFormat",
    "enableTranslation",
    "promptUpsampling",
    "safetyTolerance",
    "callBackUrl",
    "uploadCn",
    "watermark",
}
MODERATED_MSG = "Your prompt was flagged by Website as violating content policies"
SANDBOX_SECRETS = {"KIE_WEBHOOK_HMAC_KEY": "sandbox-kie-hmac-key"}  # KIE signs; FluxAPI.ai does not


def error(status: int, message: str, code: str = "") -> Response:
    http_status = status if status >= 500 and status != 501 and status != 505 and status != 455 else 200
    return JSONResponse({"code": status, "msg": message, "data": None}, status_code=http_status)


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """The KIE protocol for provider ``name`` (kie or fluxapi); only KIE has the upload API."""

    async def authorized(request: Request) -> Response | None:
        if not state.key_ok(name, bearer(request)):
            return error(401, "You do not have access permissions")
        return None

    async def generate(request: Request) -> Response:
        state.record(name, "POST", request.url.path, "create")
        denied = await authorized(request) or await fault(state, name, "create", error)
        if denied:
            return denied
        body = await json_body(request)
        problem = validate(body)
        if problem or body is None:
            return error(422, problem or "Request body must be a JSON object")
        job = state.new_job(
            name,
            body.get("model", "flux-kontext-pro"),
            body["prompt"],
            body,
            aspect_ratio=body.get("aspectRatio"),
            output_format=body.get("outputFormat", "jpeg"),
            input_url=body.get("inputImage"),
            callback_url=body.get("callBackUrl"),
        )
        schedule_callback(state, job, lambda j: callback(state, j, origin(request), label, name))
        return JSONResponse({"code": 200, "msg": "success", "data": {"taskId": job.id}})

    async def record_info(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "status")
        denied = await authorized(request) or await fault(state, name, "status", error)
        if denied:
            return denied
        job = state.jobs.get(request.query_params.get("taskId", ""))
        if job is None or job.provider != name:
            return error(404, "Task not found: check the taskId")
        return JSONResponse({"code": 200, "msg": "success", "data": await record(state, job, origin(request), label)})

    async def upload(request: Request) -> Response:
        state.record(name, "POST", request.url.path, "upload")
        denied = await authorized(request) or await fault(state, name, "upload", error)
        if denied:
            return denied
        body = await json_body(request) or {}
        content, mime = _decode(body.get("base64Data"))
        if content is None:
            return error(422, "base64Data is required and must be base64 or a data URL")
        file_name = str(body.get("fileName") or "upload")
        file_id = state.add_file(content, mime, file_name)
        return JSONResponse(
            {
                "success": True,
                "code": 200,
                "msg": "File uploaded successfully",
                "data": {
                    "fileName": file_name,
                    "filePath": f"{body.get('uploadPath', 'images')}/{file_name}",
                    "downloadUrl": f"{origin(request)}/files/{file_id}",
                    "fileSize": len(content),
                    "mimeType": mime,
                    "uploadedAt": _iso(datetime.now(UTC)),
                },
            }
        )

    routes = [
        Route("/api/v1/flux/kontext/generate", generate, methods=["POST"]),
        Route("/api/v1/flux/kontext/record-info", record_info, methods=["GET"]),
    ]
    if name == "kie":
        routes.append(Route("/api/file-base64-upload", upload, methods=["POST"]))
    return Starlette(routes=routes)


def validate(body: dict[str, Any] | None) -> str | None:
    """The first problem with a generate body, in KIE's words, or None."""
    if body is None:
        return "Request body must be a JSON object"
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return f"Unknown parameter(s): {', '.join(unknown)}"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt is required"
    if body.get("model", "flux-kontext-pro") not in MODELS:
        return "model must be flux-kontext-pro or flux-kontext-max"
    if body.get("aspectRatio", "16:9") not in RATIOS:
        return f"aspectRatio must be one of {', '.join(sorted(RATIOS))}"
    if body.get("outputFormat", "jpeg") not in {"jpeg", "png"}:
        return "outputFormat must be jpeg or png"
    return _validate_types(body)


def _validate_types(body: dict[str, Any]) -> str | None:
    for flag in ("enableTranslation", "promptUpsampling", "uploadCn"):
        if flag in body and not isinstance(body[flag], bool):
            return f"{flag} must be a boolean"
    tolerance = body.get("safetyTolerance", 2)
    high = 2 if body.get("inputImage") else 6
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or not 0 <= tolerance <= high:
        return f"safetyTolerance must be an integer from 0 to {high}"
    image = body.get("inputImage")
    if image is not None and (not isinstance(image, str) or not image.startswith(("http://", "https://"))):
        return "inputImage must be a publicly accessible URL"
    return None


async def record(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    """The record-info data of a job, as it is right now."""
    now = state.clock()
    data: dict[str, Any] = {
        "taskId": job.id,
        "paramJson": json.dumps(job.body),
        "response": None,
        "successFlag": 0,
        "errorCode": None,
        "errorMessage": "",
        "createTime": _iso(_wall(state, job, 0.0)),
        "completeTime": None,
    }
    if not job.is_done(now):
        return data
    data["completeTime"] = _iso(_wall(state, job, job.duration_s))
    if job.outcome == "success":
        url = await state.result_url(job, base, label)
        data.update(successFlag=1, response={"originImageUrl": url, "resultImageUrl": url})
    elif job.outcome == "moderate":
        data.update(successFlag=3, errorCode=400, errorMessage=MODERATED_MSG)
    else:
        data.update(successFlag=3, errorCode=501, errorMessage="Image generation task failed")
    return data


async def callback(
    state: SandboxState, job: SandboxJob, base: str, label: str, name: str
) -> tuple[bytes, dict[str, str]]:
    """The callback KIE POSTs when a job ends; result under data.info (not data.response) [doc]."""
    if job.outcome == "success":
        url = await state.result_url(job, base, label)
        body = {
            "code": 200,
            "msg": "BFL image generated successfully.",
            "data": {"taskId": job.id, "info": {"originImageUrl": url, "resultImageUrl": url}},
        }
    elif job.outcome == "moderate":
        body = {"code": 400, "msg": MODERATED_MSG, "data": {"taskId": job.id}}
    else:
        body = {"code": 501, "msg": "Image generation task failed", "data": {"taskId": job.id}}
    headers: dict[str, str] = {}
    if name == "kie":
        timestamp = str(int(time.time()))
        key = state.signing_secrets.get(name, SANDBOX_SECRETS["KIE_WEBHOOK_HMAC_KEY"])
        headers = {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": _signature(job.id, timestamp, key)}
    return json.dumps(body).encode(), headers


def _signature(task_id: str, timestamp: str, key: str) -> str:
    """base64(HMAC-SHA256(key = webhookHmacKey, msg = taskId + "." + timestamp)), as KIE documents it
    [https://docs.kie.ai/common-api/webhook-verification]. Written here, not imported from the adapter, so the
    sandbox checks the adapter against the document rather than against itself."""
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _decode(value: Any) -> tuple[bytes | None, str]:
    if not isinstance(value, str) or not value:
        return None, ""
    mime = "image/png"
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        mime = header[5:].split(";")[0] or mime
    try:
        return base64.b64decode(value, validate=True), mime
    except (binascii.Error, ValueError):
        return None, ""


def _iso(moment: datetime) -> str:
    """ISO 8601 UTC as the docs show it, with milliseconds (the docs' examples have none; readers take both)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _wall(state: SandboxState, job: SandboxJob, after_s: float) -> datetime:
    """The wall-clock moment ``after_s`` after the job was created (the state's clock may be monotonic)."""
    created = time.time() - job.elapsed(state.clock())
    return datetime.fromtimestamp(created + after_s, UTC)
