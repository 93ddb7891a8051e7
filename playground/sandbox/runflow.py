"""Sandbox of Runflow's model-run API, written from Runflow docs and docs.runflow.io [doc].

Errors are {code, message, errors} on real HTTP statuses (422 carries field details in ``errors``).
A run object moves queued -> dispatching -> running -> succeeded|failed; its image is under
output.outputs[].url. Asset uploads hand out a pre-signed-style URL on this server that, like an S3
pre-signed URL, refuses a request that also carries an Authorization header.

Facts cited as [doc] are in docs/providers.md, section "Runflow".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playground.images import sniff
from playground.sandbox.common import bearer, fault, json_body, mount_url, origin, schedule_callback
from playground.sandbox.core import SandboxJob, SandboxState, Stage

# The [max] path is a GUESS shared with the adapter [doc]; the [pro] path is documented [doc].
MODEL_PATHS = {
    "black-forest-labs/flux-pro/kontext": "flux-kontext-pro",
    "black-forest-labs/flux-pro/kontext/max": "flux-kontext-max",
}
PRICES = {"flux-kontext-pro": "0.04", "flux-kontext-max": "0.08"}
TOP_FIELDS = {"input", "callback_url", "metadata", "client_ref"}
INPUT_FIELDS = {
    "prompt",
    "image_url",
    "aspect_ratio",
    "num_images",
    "guidance_scale",
    "output_format",
    "safety_tolerance",
    "enhance_prompt",
    "seed",
    "sync_mode",
}
RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_MIMES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
# Codes from https://docs.runflow.io/concepts/errors; 400/404-model/500 codes are GUESSES.
CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_CREDIT",
    403: "PERMISSION_DENIED",
    404: "RUN_NOT_FOUND",
    409: "CONFLICT",
    422: "INPUT_VALIDATION_FAILED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "MODEL_UNAVAILABLE",
}
# Runflow documents no moderation code: the sandbox uses fal's error type and the nsfw flag (GUESS).
FAILURES = {
    "fail": ("PROVIDER_ERROR", "Upstream provider returned an error while generating the image", "inference"),
    "moderate": ("CONTENT_POLICY_VIOLATION", "Output was flagged as NSFW by the safety checker", "inference"),
}
QUEUED_SHARE, DISPATCH_SHARE = 0.2, 0.35
SANDBOX_SECRETS = {"RUNFLOW_CALLBACK_SECRET": "whsec_sandbox_runflow_signing_secret"}


def error(status: int, message: str, code: str = "", errors: list[dict[str, str]] | None = None) -> Response:
    """Runflow's error envelope; a lower-case code from the shared fault helper is replaced by Runflow's."""
    if not code or code.islower():
        code = CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    return JSONResponse({"code": code, "message": message, "errors": errors}, status_code=status)


def build(state: SandboxState, name: str, label: str) -> Starlette:
    """Runflow's runs and asset-upload endpoints for provider ``name``."""
    assets: dict[str, dict[str, Any]] = {}

    async def denied(request: Request, stage: Stage) -> Response | None:
        state.record(name, request.method, request.url.path, stage)
        if not state.key_ok(name, bearer(request)):
            return error(401, "Missing or invalid API key")
        return await fault(state, name, stage, error)

    async def create_run(request: Request) -> Response:
        refused = await denied(request, "create")
        if refused:
            return refused
        model = MODEL_PATHS.get(request.path_params["model_path"].strip("/"))
        if model is None:
            return error(404, f"Model {request.path_params['model_path']} not found", "MODEL_NOT_FOUND")
        body = await json_body(request)
        if body is None:
            return error(400, "Request body must be a JSON object")
        problems = validate(body)
        if problems:
            return error(422, f"Input validation failed: {problems[0]['message']}", errors=problems)
        given = body["input"]
        job = state.new_job(
            name,
            model,
            given["prompt"],
            body,
            aspect_ratio=given.get("aspect_ratio"),
            output_format=given.get("output_format", "jpeg"),
            input_url=given["image_url"],
            callback_url=body.get("callback_url"),
        )
        schedule_callback(state, job, lambda j: callback(state, j, origin(request), label, name))
        # The create status is UNCERTAIN [doc]; the sandbox answers 201.
        return JSONResponse(await run_object(state, job, origin(request), label, mount_url(request)), status_code=201)

    async def get_run(request: Request) -> Response:
        refused = await denied(request, "status")
        if refused:
            return refused
        job = _find(state, name, request.path_params["run_id"])
        if job is None:
            return error(404, "Run not found")
        return JSONResponse(await run_object(state, job, origin(request), label, mount_url(request)))

    async def reserve_upload(request: Request) -> Response:
        refused = await denied(request, "upload")
        if refused:
            return refused
        body = await json_body(request)
        problems = validate_upload(body)
        if problems or body is None:
            return error(422, f"Input validation failed: {problems[0]['message']}", errors=problems)
        asset_id, token = str(uuid.uuid4()), secrets.token_hex(16)
        assets[asset_id] = {**body, "token": token, "content": None}
        upload_url = f"{mount_url(request)}/_uploads/{asset_id}?X-Amz-Signature={token}"
        return JSONResponse({"asset_id": asset_id, "upload_url": upload_url}, status_code=201)

    async def put_upload(request: Request) -> Response:
        state.record(name, "PUT", request.url.path, "upload-put")
        asset = assets.get(request.path_params["asset_id"])
        problem = _put_problem(request, asset)
        if problem or asset is None:
            return _s3_error(*(problem or (403, "AccessDenied", "No such upload")))
        content = await request.body()
        if len(content) != asset["size_bytes"]:
            return _s3_error(400, "IncompleteBody", "The body does not match the declared size_bytes")
        asset["content"] = content
        return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(content).hexdigest()}"'})

    async def confirm_upload(request: Request) -> Response:
        refused = await denied(request, "upload")
        if refused:
            return refused
        asset = assets.get(request.path_params["asset_id"])
        if asset is None:
            return error(404, "Asset upload not found", "ASSET_NOT_FOUND")
        body = await json_body(request)
        if body is None or set(body) - {"folder_id"} or not isinstance(body.get("folder_id"), str | None):
            return error(422, "Input validation failed: only folder_id (string or null) is accepted")
        if asset["content"] is None:
            return error(409, "The file was not uploaded to upload_url yet", "ASSET_NOT_UPLOADED")
        return JSONResponse(_confirmed(state, request, request.path_params["asset_id"], asset))

    return Starlette(
        routes=[
            Route("/v1/models/{model_path:path}/runs", create_run, methods=["POST"]),
            Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
            Route("/v1/asset-uploads", reserve_upload, methods=["POST"]),
            Route("/v1/asset-uploads/{asset_id}/confirmations", confirm_upload, methods=["POST"]),
            Route("/_uploads/{asset_id}", put_upload, methods=["PUT"]),
        ]
    )


def validate(body: dict[str, Any]) -> list[dict[str, str]]:
    """Field problems of a run body, as 422 ``errors`` entries (empty when the body is valid)."""
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        return [_problem(unknown[0], "unknown field")]
    given = body.get("input")
    if not isinstance(given, dict):
        return [_problem("input", "field required (object)")]
    for key in ("callback_url", "metadata"):
        kind = str if key == "callback_url" else dict
        if body.get(key) is not None and not isinstance(body[key], kind):
            return [_problem(key, f"must be {'a string' if kind is str else 'an object'} or null")]
    unknown = sorted(set(given) - INPUT_FIELDS)
    if unknown:
        return [_problem(f"input.{unknown[0]}", "unknown field")]
    return _required(given) or _choices(given) or _numbers(given)


def _required(given: dict[str, Any]) -> list[dict[str, str]]:
    prompt = given.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return [_problem("input.prompt", "field required")]
    image = given.get("image_url")
    if not isinstance(image, str) or not image:
        return [_problem("input.image_url", "field required")]
    if image.startswith("data:"):  # materialized to runflow://assets/..., which dispatch rejected [doc]
        return [_problem("input.image_url", "media URL must use HTTP(S) or data URI, got 'runflow'")]
    if not image.startswith(("http://", "https://")):
        return [_problem("input.image_url", f"media URL must use HTTP(S) or data URI, got '{image.split(':')[0]}'")]
    return []


def _choices(given: dict[str, Any]) -> list[dict[str, str]]:
    if given.get("aspect_ratio", "1:1") not in RATIOS:
        return [_problem("input.aspect_ratio", f"must be one of {', '.join(RATIOS)}")]
    if given.get("output_format", "jpeg") not in ("jpeg", "png"):
        return [_problem("input.output_format", "must be jpeg or png")]
    if given.get("safety_tolerance", "2") not in {"1", "2", "3", "4", "5", "6"}:
        return [_problem("input.safety_tolerance", "must be a string from '1' to '6'")]
    for flag in ("enhance_prompt", "sync_mode"):
        if flag in given and not isinstance(given[flag], bool):
            return [_problem(f"input.{flag}", "must be a boolean")]
    return []


def _numbers(given: dict[str, Any]) -> list[dict[str, str]]:
    guidance = given.get("guidance_scale", 3.5)
    if isinstance(guidance, bool) or not isinstance(guidance, int | float) or not 1 <= guidance <= 20:
        return [_problem("input.guidance_scale", "must be a number from 1 to 20")]
    for key, low, high in (("num_images", 1, 4), ("seed", 0, 2**32 - 1)):
        value = given.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return [_problem(f"input.{key}", f"must be an integer from {low} to {high}")]
    return []


def validate_upload(body: dict[str, Any] | None) -> list[dict[str, str]]:
    """Problems of an asset-upload reservation {filename, mime_type, size_bytes}."""
    if body is None:
        return [_problem("body", "must be a JSON object")]
    if set(body) - {"filename", "mime_type", "size_bytes"}:
        return [_problem(sorted(set(body) - {"filename", "mime_type", "size_bytes"})[0], "unknown field")]
    if not isinstance(body.get("filename"), str) or not body["filename"]:
        return [_problem("filename", "field required")]
    if body.get("mime_type") not in UPLOAD_MIMES:
        return [_problem("mime_type", f"must be one of {', '.join(sorted(UPLOAD_MIMES))}")]
    size = body.get("size_bytes")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_UPLOAD_BYTES:
        return [_problem("size_bytes", f"must be an integer from 1 to {MAX_UPLOAD_BYTES}")]
    return []


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": f"{field}: {message}"}


def _put_problem(request: Request, asset: dict[str, Any] | None) -> tuple[int, str, str] | None:
    """What S3 would say about this PUT to a pre-signed URL, if anything."""
    if asset is None or request.query_params.get("X-Amz-Signature") != asset["token"]:
        return 403, "SignatureDoesNotMatch", "The request signature we calculated does not match"
    if "authorization" in request.headers:
        return 400, "InvalidArgument", "Only one auth mechanism allowed; the URL is already signed"
    if request.headers.get("content-type", "").split(";")[0].strip() != asset["mime_type"]:
        return 403, "SignatureDoesNotMatch", "Content-Type differs from the signed mime_type"
    return None


def _s3_error(status: int, code: str, message: str) -> Response:
    xml = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(xml, status_code=status, media_type="application/xml")


def _confirmed(state: SandboxState, request: Request, asset_id: str, asset: dict[str, Any]) -> dict[str, Any]:
    if "file_id" not in asset:
        asset["file_id"] = state.add_file(asset["content"], asset["mime_type"])
    url = f"{origin(request)}/files/{asset['file_id']}"
    return {
        "id": asset_id,
        "name": asset["filename"],
        "url": url,
        "thumbnail_url": url,
        "mime_type": asset["mime_type"],
        "size_bytes": asset["size_bytes"],
        "created_at": _iso(datetime.now(UTC)),
    }


def _find(state: SandboxState, name: str, run_id: str) -> SandboxJob | None:
    try:
        job = state.jobs.get(uuid.UUID(run_id).hex)
    except ValueError:
        return None
    return job if job is not None and job.provider == name else None


async def run_object(state: SandboxState, job: SandboxJob, base: str, label: str, mount: str) -> dict[str, Any]:
    """The run object as GET /v1/runs/{id} shows it right now."""
    now = state.clock()
    created = datetime.now(UTC) - timedelta(seconds=job.elapsed(now))
    run: dict[str, Any] = {
        "id": str(uuid.UUID(job.id)),
        "model_id": _model_path(job.model),
        "status_code": _active(job, now),
        "input": job.body["input"],
        "output": {},
        "created_at": _iso(created),
        "started_at": None,
        "completed_at": None,
        "duration_ms": None,
        "cost": None,
        "callback_url": job.callback_url,
        "metadata": job.body.get("metadata"),
        "client_ref": job.body.get("client_ref"),
        "failure_code": None,
        "failure_message": None,
        "failure_stage_code": None,
        "links": {"self": f"{mount}/v1/runs/{uuid.UUID(job.id)}"},
    }
    if job.elapsed(now) >= job.duration_s * QUEUED_SHARE:
        run["started_at"] = _iso(created + timedelta(seconds=job.duration_s * QUEUED_SHARE))
    if job.is_done(now):
        run.update(await _ended(state, job, base, label, created))
    return run


def _active(job: SandboxJob, now: float) -> str:
    elapsed = job.elapsed(now)
    if elapsed < job.duration_s * QUEUED_SHARE:
        return "queued"
    return "dispatching" if elapsed < job.duration_s * DISPATCH_SHARE else "running"


async def _ended(state: SandboxState, job: SandboxJob, base: str, label: str, created: datetime) -> dict[str, Any]:
    duration_ms = round(job.duration_s * 1000)
    ended = {"completed_at": _iso(created + timedelta(milliseconds=duration_ms)), "duration_ms": duration_ms}
    if job.outcome == "success":
        output = await _output(state, job, base, label)
        return {**ended, "status_code": "succeeded", "cost": PRICES[job.model], "output": output}
    code, message, stage = FAILURES.get(job.outcome, FAILURES["fail"])
    output = {"nsfw_detected": True} if job.outcome == "moderate" else {}
    return {
        **ended,
        "status_code": "failed",
        "output": output,
        "failure_code": code,
        "failure_message": message,
        "failure_stage_code": stage,
    }


async def _output(state: SandboxState, job: SandboxJob, base: str, label: str) -> dict[str, Any]:
    url = await state.result_url(job, base, label)
    found = sniff(job.result or b"")
    width, height = (found[1], found[2]) if found else (None, None)
    mime = "image/png" if job.output_format == "png" else "image/jpeg"
    given = job.body["input"]
    seed = given.get("seed", 42) if isinstance(given, dict) else None
    item = {"url": url, "type": "image", "content_type": mime, "width": width, "height": height}
    return {
        "outputs": [item],
        "seed": seed,
        "model_data": {},
        "nsfw_detected": False,
        "timing": {"inference_ms": round(job.duration_s * 800)},
    }


async def callback(
    state: SandboxState, job: SandboxJob, base: str, label: str, name: str
) -> tuple[bytes, dict[str, str]]:
    """The delivery POSTed to callback_url when the run ends: the event envelope, hex HMAC of the raw body."""
    created = datetime.now(UTC) - timedelta(seconds=job.duration_s)
    if job.outcome == "success":
        event, status, output = "run.completed", "succeeded", await _output(state, job, base, label)
    else:
        code, message, _ = FAILURES.get(job.outcome, FAILURES["fail"])
        event, status, output = "run.failed", "failed", {"code": code, "message": message}
    envelope = {
        "event": event,
        "run_id": str(uuid.UUID(job.id)),
        "status": status,
        "output": output,
        "duration_ms": round(job.duration_s * 1000),
        "created_at": _iso(created),
        "completed_at": _iso(datetime.now(UTC)),
        "metadata": job.body.get("metadata"),
    }
    body = json.dumps(envelope).encode()
    headers = {"Runflow-Request-Id": str(uuid.uuid4())}
    secret = state.signing_secrets.get(name, SANDBOX_SECRETS["RUNFLOW_CALLBACK_SECRET"])
    if secret:
        headers["Runflow-Signature"] = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, headers


def _model_path(model: str) -> str:
    return next(path for path, known in MODEL_PATHS.items() if known == model)


def _iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and +00:00 (not Z), as Runflow writes it [https://docs.runflow.io/concepts/callbacks]."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
