"""Sandbox of the APIXO protocol, written from APIXO docs and apixo.ai's docs [doc].

Every answer is {code, message, data}; errors use the real HTTP status with the same number in
``code`` and the detail in ``data.error`` [https://apixo.ai/docs/api-reference/error-codes].
A task's ``resultJson`` is a JSON string. Callbacks POST the status envelope, unsigned.

Facts cited as [doc] are in docs/providers.md, section "APIXO".
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.sandbox.common import bearer, fault, json_body, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState

MODEL_ID = "flux-kontext"
MODES = {"pro": "flux-kontext-pro", "max": "flux-kontext-max"}
RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
DEFAULT_RATIO = "16:9"  # "aspect_ratio ... default 16:9" [doc]
MAX_PROMPT_CHARS = 10_000
TOP_FIELDS = {"request_type", "callback_url", "provider", "input", "source"}  # source: APIXO's MCP server sends it
INPUT_FIELDS = {
    "mode",
    "prompt",
    "aspect_ratio",
    "image_urls",
    "image_url",
    "output_format",
    "safetyTolerance",
    "promptUpsampling",
    "enableTranslation",
    "watermark",
    "uploadCn",
}
BOOL_FIELDS = ("promptUpsampling", "enableTranslation", "uploadCn")
TITLES = {
    400: "Invalid request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    429: "Rate limit exceeded",
    500: "Internal server error",
    503: "Service unavailable",
}
FAILURES = {
    "fail": ("GENERATION_FAILED", "Image generation failed"),
    "moderate": ("CONTENT_VIOLATION", "Content violates usage policy"),
}
PENDING_SHARE = 0.2  # the first fifth of a job reads "pending", the rest "processing"
SANDBOX_SECRETS: dict[str, str] = {}  # APIXO documents no callback signature


def error(status: int, detail: str, code: str = "") -> Response:
    """APIXO's error answer: the HTTP status, repeated in ``code``, the detail in ``data.error``."""
    body = {"code": status, "message": TITLES.get(status, "Error"), "data": {"error": detail}}
    return JSONResponse(body, status_code=status)


def envelope(data: dict[str, Any]) -> Response:
    return JSONResponse({"code": 200, "message": "success", "data": data})


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """The APIXO protocol for provider ``name``."""

    def denied(request: Request) -> Response | None:
        if not request.headers.get("authorization"):
            return error(401, "Missing API Key")
        if not state.key_ok(name, bearer(request)):
            return error(401, "Invalid API Key")
        return None

    async def generate(request: Request) -> Response:
        state.record(name, "POST", request.url.path, "create")
        refused = denied(request) or await fault(state, name, "create", error) or _unknown_model(request)
        if refused:
            return refused
        if "application/json" not in request.headers.get("content-type", ""):
            return error(400, "Content-Type must be application/json")
        body = await json_body(request)
        problem = validate(body)
        if problem or body is None:
            return error(400, problem or "Request body must be a JSON object")
        job = _new_job(state, name, body)
        schedule_callback(state, job, lambda j: callback(state, j, origin(request), label))
        return envelope({"taskId": job.id})

    async def status(request: Request) -> Response:
        state.record(name, "GET", request.url.path, "status")
        refused = denied(request) or await fault(state, name, "status", error) or _unknown_model(request)
        if refused:
            return refused
        task_id = request.query_params.get("taskId")
        if not task_id:
            return error(400, "Missing required parameter: taskId")
        job = state.jobs.get(task_id)
        if job is None or job.provider != name:
            return error(404, f"Task not found: {task_id}")
        return envelope(await task_data(state, job, origin(request), label))

    return Starlette(
        routes=[
            Route("/api/v1/generateTask/{model}", generate, methods=["POST"]),
            Route("/api/v1/statusTask/{model}", status, methods=["GET"]),
        ]
    )


def _unknown_model(request: Request) -> Response | None:
    model = request.path_params.get("model")
    return None if model == MODEL_ID else error(404, f"Model not found: {model}")


def _new_job(state: SandboxState, name: str, body: dict[str, Any]) -> SandboxJob:
    given = body["input"]
    urls = given.get("image_urls") or ([given["image_url"]] if given.get("image_url") else [])
    return state.new_job(
        name,
        MODES[given["mode"]],
        given["prompt"],
        body,
        aspect_ratio=given.get("aspect_ratio", DEFAULT_RATIO),
        output_format=given.get("output_format", "jpeg"),
        input_url=urls[0] if urls else None,
        callback_url=body.get("callback_url") if body.get("request_type") == "callback" else None,
    )


def validate(body: dict[str, Any] | None) -> str | None:
    """The first problem with a generateTask body, in APIXO's words, or None."""
    if body is None:
        return "Request body must be a JSON object"
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        return f"Unknown field: {unknown[0]}"
    problem = _validate_routing(body)
    if problem:
        return problem
    given = body.get("input")
    if not isinstance(given, dict):
        return "Missing required field: input"
    return _validate_input(given)


def _validate_routing(body: dict[str, Any]) -> str | None:
    request_type = body.get("request_type", "async")
    if request_type not in ("async", "callback"):
        return "request_type must be async or callback"
    url = body.get("callback_url")
    if request_type == "callback" and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return "callback_url is required when request_type is callback"
    if body.get("provider", "auto") not in ("auto", "value", "official"):
        return "provider must be auto, value or official"
    return None


def _validate_input(given: dict[str, Any]) -> str | None:
    unknown = sorted(set(given) - INPUT_FIELDS)
    if unknown:
        return f"Unknown field: input.{unknown[0]}"
    prompt = given.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "Missing required field: input.prompt"
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"input.prompt must be at most {MAX_PROMPT_CHARS} characters"
    if "mode" not in given:
        return "Missing required field: input.mode"
    if given["mode"] not in MODES:
        return "input.mode must be pro or max"
    if given.get("aspect_ratio", DEFAULT_RATIO) not in RATIOS:
        return f"input.aspect_ratio must be one of {', '.join(RATIOS)}"
    if given.get("output_format", "jpeg") not in ("jpeg", "png"):
        return "input.output_format must be jpeg or png"
    return _validate_options(given) or _validate_images(given)


def _validate_options(given: dict[str, Any]) -> str | None:
    tolerance = given.get("safetyTolerance", 2)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or not 0 <= tolerance <= 2:
        return "input.safetyTolerance must be an integer from 0 to 2"
    for flag in BOOL_FIELDS:
        if flag in given and not isinstance(given[flag], bool):
            return f"input.{flag} must be a boolean"
    if "watermark" in given and not isinstance(given["watermark"], str):
        return "input.watermark must be a string"
    return None


def _validate_images(given: dict[str, Any]) -> str | None:
    if "image_urls" in given and "image_url" in given:
        return "Use input.image_urls only"
    urls = given.get("image_urls", [])
    if "image_url" in given:  # the older page's single string; tolerated [doc]
        urls = [given["image_url"]] if isinstance(given["image_url"], str) else None
    if not isinstance(urls, list):
        return "input.image_urls must be an array of URLs"
    if len(urls) > 1:
        return "input.image_urls takes at most 1 image URL"
    if any(not isinstance(u, str) or not u.startswith(("http://", "https://")) for u in urls):
        return "input.image_urls must contain public http(s) URLs"
    return None


async def task_data(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    """The statusTask data of a job, as it is right now."""
    elapsed = job.elapsed(state.clock())
    if job.is_done(state.clock()):
        return await final_data(state, job, base, label)
    running = "pending" if elapsed < job.duration_s * PENDING_SHARE else "processing"
    return {"taskId": job.id, "state": running, "createTime": _create_ms(state, job)}


async def final_data(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    """The data of a finished job: success with resultJson (a string), or failed with failCode/failMsg."""
    created = _create_ms(state, job)
    cost = round(job.duration_s * 1000)
    data: dict[str, Any] = {"taskId": job.id, "createTime": created, "completeTime": created + cost}
    if job.outcome == "success":
        url = await state.result_url(job, base, label)
        data.update(state="success", resultJson=json.dumps({"resultUrls": [url]}), costTime=cost)
    else:
        code, message = FAILURES.get(job.outcome, FAILURES["fail"])
        data.update(state="failed", failCode=code, failMsg=message)
    return data


async def callback(state: SandboxState, job: SandboxJob, base: str, label: str) -> tuple[bytes, dict[str, str]]:
    """The delivery APIXO POSTs to callback_url: the status envelope, no signature header."""
    data = await final_data(state, job, base, label)
    return json.dumps({"code": 200, "message": "success", "data": data}).encode(), {}


def _create_ms(state: SandboxState, job: SandboxJob) -> int:
    """Unix milliseconds of the job's creation (the state's clock is monotonic)."""
    return round((time.time() - job.elapsed(state.clock())) * 1000)
