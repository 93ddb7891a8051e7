"""Runflow (runflow.io): FLUX.1 Kontext [pro]/[max] as edit-only model runs.

Create with POST /v1/models/{model path}/runs ({input, callback_url?}), poll GET /v1/runs/{id}, whose
``status_code`` is queued|dispatching|running|succeeded|failed|canceled|partial_succeeded; the image is
output.outputs[*].url [doc][https://docs.runflow.io/concepts/runs]. Local files go
through asset uploads (create, pre-signed PUT, confirm) [runflow-js packages/sdk/src/assets.ts]; callbacks
are signed hex(HMAC-SHA256(secret, raw body)) [https://docs.runflow.io/guides/verify-callback-signatures].

Facts cited as [doc] are in docs/providers.md, section "Runflow".
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from playground.errors import (
    AuthenticationError,
    ProviderHTTPError,
    UnexpectedResponseError,
    UnsupportedParameterError,
    WebhookError,
)
from playground.http import HttpClient
from playground.models import (
    Capabilities,
    GenerationRequest,
    InputImage,
    JobRef,
    JobState,
    JobStatus,
    ModelId,
    Price,
    Submission,
)
from playground.providers.base import (
    Adapter,
    CallbackUpdate,
    PollSchedule,
    ProviderConfig,
    ProviderSpec,
    as_dict,
    callback_json,
    callback_task_id,
    compact,
    first_str,
    number,
    span_s,
    wire,
    with_timings,
)

RUNS_PATH = "/v1/models/{model_path}/runs"
RUN_PATH = "/v1/runs/{run_id}"
UPLOADS_PATH = "/v1/asset-uploads"
CONFIRM_PATH = "/v1/asset-uploads/{asset_id}/confirmations"
PRO_PATH_ENV = "RUNFLOW_PRO_MODEL_PATH"
MAX_PATH_ENV = "RUNFLOW_MAX_MODEL_PATH"
SECRET_ENV = "RUNFLOW_CALLBACK_SECRET"  # one secret, or several separated by commas while rotating
MODEL_PATHS: dict[ModelId, tuple[str, str]] = {
    "flux-kontext-pro": (PRO_PATH_ENV, "black-forest-labs/flux-pro/kontext"),  # [doc]
    # UNCERTAIN [doc]: [max] is sold at $0.08 but its API path is not documented; this is a
    # GUESS by analogy with fal's fal-ai/flux-pro/kontext/max (Runflow's input schema mirrors fal's).
    "flux-kontext-max": (MAX_PATH_ENV, "black-forest-labs/flux-pro/kontext/max"),
}
# "dispatching" means handed to the upstream but not started. A word not listed is unknown (still running).
_ACTIVE: dict[str, JobState] = {"queued": "queued", "dispatching": "queued", "running": "running"}
_CANCELED = frozenset({"canceled", "cancelled"})  # newer docs spell it canceled, older ones cancelled
_EVENTS = {
    "run.completed": "succeeded",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
    "run.partial_succeeded": "partial_succeeded",
}
# GUESS [doc]: Runflow documents no moderation code. The output's nsfw_detected flag is
# documented [doc]; the words below cover fal-style "content_policy_violation" and NSFW messages.
_MODERATION = re.compile(r"nsfw|moderat|content[ _-]?polic|safety|flagged|inappropriate", re.IGNORECASE)


class RunflowProvider(Adapter):
    """Adapter for Runflow's model-run API."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        if request.image is None:
            raise UnsupportedParameterError(f"{self.spec.label} only edits images: add an input image.")
        image_url = request.image.url or await self._upload(request.image)
        body = to_payload(request, image_url, callback_url)
        url = self._config.url(RUNS_PATH.format(model_path=self.model_path(request.model)))
        # The create status is UNCERTAIN (200/201/202) [doc]: any 2xx is accepted.
        try:
            response = await self._http.create("POST", url, json=body, headers=self._config.bearer())
        except ProviderHTTPError as exc:
            if exc.status_code == 404 and request.model == "flux-kontext-max":
                env, _ = MODEL_PATHS[request.model]
                path = self.model_path(request.model)
                hint = f" Runflow documents no [max] path; this run used {path}: set {env} to the right one."
                raise type(exc)(
                    str(exc) + hint,
                    provider=exc.provider,
                    code=exc.code,
                    status_code=exc.status_code,
                    request_id=exc.request_id,
                    retry_after_s=exc.retry_after_s,
                ) from exc
            raise
        run = self._http.json(response)
        run_id = first_str(run.get("id"), run.get("run_id"))
        return self.submitted(request, run_id, wire("POST", url, self._config, body))

    async def status(self, job: JobRef) -> JobStatus:
        url = self._config.url(RUN_PATH.format(run_id=quote(job.task_id, safe="")))
        response = await self._http.fetch("GET", url, headers=self._config.bearer())
        return to_status(self._http.json(response))

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Verify Runflow-Signature (when a secret is set) and read the event envelope.

        The signature covers the raw body only and there is no timestamp, so no staleness window can
        be applied; a replayed delivery is dropped by the service's per-job idempotency and
        ``delivery_id`` (Runflow-Request-Id) [https://docs.runflow.io/concepts/callbacks].
        """
        secrets = callback_secrets(self._config.secret(SECRET_ENV))
        if secrets:
            verify_signature(headers.get("runflow-signature", ""), body, secrets, provider=self.spec.name)
        payload = callback_json(body, self.spec)
        run_id = callback_task_id(payload, ("run_id", "id"), self.spec, "run_id")
        status = callback_status(payload) if secrets else None
        return CallbackUpdate(task_id=run_id, status=status, delivery_id=headers.get("runflow-request-id"))

    def model_path(self, model: ModelId) -> str:
        """The model's path in the run URL; each one can be overridden by its environment variable."""
        env, default = MODEL_PATHS[model]
        return (self._config.extra.get(env) or default).strip("/")

    async def _upload(self, image: InputImage) -> str:
        """Asset upload: reserve, PUT the bytes to the pre-signed URL, confirm; the confirmed URL is HTTPS."""
        content, mime = image.content or b"", image.mime_type or "image/png"
        reserve = {"filename": image.filename, "mime_type": mime, "size_bytes": len(content)}
        slot = await self._post(UPLOADS_PATH, reserve)
        asset_id, upload_url = first_str(slot.get("asset_id"), slot.get("id")), first_str(slot.get("upload_url"))
        if asset_id is None or upload_url is None:
            raise self._unexpected("reserved an asset upload but gave no asset_id or upload_url")
        await self._put(upload_url, content, mime)
        asset = await self._post(CONFIRM_PATH.format(asset_id=quote(asset_id, safe="")), {"folder_id": None})
        url = first_str(asset.get("url"))
        if url is None:
            raise self._unexpected("confirmed the upload but gave no url")
        return url

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # Reserving or confirming an asset starts no paid job, so these may be retried.
        response = await self._http.fetch("POST", self._config.url(path), json=body, headers=self._config.bearer())
        return self._http.json(response)

    def _unexpected(self, what: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(f"{self.spec.label} {what}.", provider=self.spec.name)

    async def _put(self, url: str, content: bytes, mime: str) -> None:
        # The pre-signed URL lives on the storage host: it must never receive the API key.
        try:
            await self._http.fetch("PUT", url, content=content, headers={"Content-Type": mime})
        except AuthenticationError as exc:
            message = f"{self.spec.label}'s upload URL refused the file (HTTP {exc.status_code}); it may have expired."
            raise ProviderHTTPError(message, provider=self.spec.name, status_code=exc.status_code) from exc


def to_payload(request: GenerationRequest, image_url: str, callback_url: str | None) -> dict[str, Any]:
    """The run body: snake_case ``input`` fields as documented [doc]; safety_tolerance is a string."""
    tolerance = str(request.safety_tolerance) if request.safety_tolerance is not None else None
    return compact(
        {
            "input": compact(
                {
                    "prompt": request.prompt,
                    "image_url": image_url,
                    "aspect_ratio": request.aspect_ratio,
                    "guidance_scale": request.guidance,
                    "output_format": request.output_format,
                    "safety_tolerance": tolerance,
                    "enhance_prompt": True if request.prompt_upsampling else None,
                    "seed": request.seed,
                }
            ),
            "callback_url": callback_url,
        }
    )


def to_status(run: Mapping[str, Any]) -> JobStatus:
    """Normalise a run object, with Runflow's own timings and billed cost [doc: timings][doc: cost]."""
    created, started, completed = run.get("created_at"), run.get("started_at"), run.get("completed_at")
    status = with_timings(
        _state(run),
        total=number(run.get("duration_ms"), 0.001) or span_s(created, completed),
        queued=span_s(created, started),
        generating=span_s(started, completed),
    )
    billed = number(run.get("cost"))
    return status.model_copy(update={"billed_usd": billed}) if billed is not None and status.is_terminal else status


def _state(run: Mapping[str, Any]) -> JobStatus:
    """Normalise a run object. partial_succeeded is terminal: success with an image, else failure."""
    word = str(first_str(run.get("status_code"), run.get("status")) or "").lower()
    output = run.get("output")
    urls = output_urls(output)
    if word in ("succeeded", "partial_succeeded") and urls:
        return JobStatus(state="succeeded", image_urls=urls, raw=dict(run))
    if word == "succeeded" and not _nsfw(output):
        return JobStatus(state="succeeded", raw=dict(run))  # the service reports the missing URL
    if word in ("succeeded", "partial_succeeded", "failed"):
        return failure_status(run, word)
    if word in _CANCELED:
        return JobStatus(state="canceled", error=_failure(run)[1], raw=dict(run))
    if word in _ACTIVE:
        return JobStatus(state=_ACTIVE[word], raw=dict(run))
    return JobStatus(state="running", unknown=word or "(none)", raw=dict(run))


def failure_status(run: Mapping[str, Any], word: str) -> JobStatus:
    """A run that ended without an image, with Runflow's failure code, message and stage."""
    code, message = _failure(run)
    if message is None:
        message = "the output was flagged as NSFW" if _nsfw(run.get("output")) else f"the run ended as {word}"
    moderated = _nsfw(run.get("output")) or bool(_MODERATION.search(f"{code or ''} {message}"))
    return JobStatus(state="failed", error=message, error_code=code, moderated=moderated, raw=dict(run))


def _failure(run: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """failure_code/failure_message, the SDK's optional error object, or the callback's error envelope."""
    error, output = as_dict(run.get("error")), as_dict(run.get("output"))
    code = first_str(run.get("failure_code"), error.get("code"), output.get("code"))
    message = first_str(run.get("failure_message"), error.get("message"), output.get("message"))
    # The API reference says failure_stage_code, the errors page failure_stage [doc].
    stage = first_str(run.get("failure_stage_code"), run.get("failure_stage"))
    if message is None and code is not None:
        # failure_message is not promised on every failed run, but failure_code (e.g. INPUT_VALIDATION_FAILED)
        # already names the reason [doc: poll]: show it rather than a generic sentence.
        message = f"failure code {code}"
    if message and stage:
        message = f"{message.rstrip('.')} (stage: {stage})"
    return code, message


def output_urls(output: Any) -> tuple[str, ...]:
    """Image URLs in the order of the official SDK's extractor [runflow-js packages/sdk/src/tools/outputs.ts]."""
    if not isinstance(output, dict):
        return ()
    items = [as_dict(item) for item in _list(output.get("outputs"))]
    urls = tuple(u for item in items if item.get("type", "image") == "image" and (u := first_str(item.get("url"))))
    if urls:
        return urls
    listed = _list(output.get("image_urls"))[:1]
    found = first_str(*listed, as_dict(output.get("image")).get("url"), output.get("url"), output.get("output_url"))
    return (found,) if found else ()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _nsfw(output: Any) -> bool:
    return isinstance(output, dict) and output.get("nsfw_detected") is True


def callback_status(payload: Mapping[str, Any]) -> JobStatus:
    """A callback envelope as a status: ``status`` (or the ``event`` name) read like a run's status_code."""
    word = first_str(payload.get("status")) or _EVENTS.get(str(payload.get("event")), "")
    return to_status({**payload, "status_code": word})


def callback_secrets(value: str | None) -> tuple[str, ...]:
    """The configured signing secrets; several verify in parallel during a rotation [doc]."""
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


def runflow_signature(body: bytes, secret: str) -> str:
    """hex(HMAC-SHA256(key = the plain secret as UTF-8, message = the raw body))."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(header: str, body: bytes, secrets: tuple[str, ...], *, provider: str) -> None:
    """Raise WebhookError unless ``header`` is the signature of ``body`` under one of ``secrets``."""
    presented = header.strip().lower()
    if not presented:
        raise WebhookError("Runflow callback has no Runflow-Signature header.", provider=provider)
    if not any(hmac.compare_digest(runflow_signature(body, s), presented) for s in secrets):
        raise WebhookError("Runflow callback signature does not match.", provider=provider)


def _factory(config: ProviderConfig, http: HttpClient) -> RunflowProvider:
    return RunflowProvider(SPEC, config, http)


SPEC = ProviderSpec(
    name="runflow",
    label="Runflow",
    key_env="RUNFLOW_API_KEY",
    base_url_env="RUNFLOW_BASE_URL",
    default_base_url="https://api.runflow.io",
    factory=_factory,
    capabilities=Capabilities(
        text_to_image=False,  # image_url is required: the Kontext endpoint only edits [doc]
        edit=True,
        aspect_ratios=("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"),
        safety_range=(1, 6),
        safety_range_edit=(1, 6),
        seed=True,
        guidance=True,
        prompt_upsampling=True,
        callbacks=True,
        upload=True,
    ),
    poll=PollSchedule(first_s=2.0, interval_s=2.0),  # runflow-js default poll interval [doc]
    models={model: default for model, (_, default) in MODEL_PATHS.items()},  # run paths; each env may override
    sandbox="runflow",
    prices={
        "flux-kontext-pro": Price(usd=0.04, source="https://www.runflow.io/models/black-forest-labs/flux-pro/kontext"),
        "flux-kontext-max": Price(usd=0.08, source="https://runflow.io/models/black-forest-labs/flux-pro-kontext-max"),
    },
    extra_env={
        PRO_PATH_ENV: MODEL_PATHS["flux-kontext-pro"][1],
        MAX_PATH_ENV: MODEL_PATHS["flux-kontext-max"][1],
        SECRET_ENV: "",
    },
    docs_url="https://docs.runflow.io/api-reference/models/create-and-dispatch-a-singleton-model-run",
    key_url="https://app.runflow.io/settings/api-keys",
    callback_body_signed=True,  # HMAC of the body [docs/providers.md, Runflow]
    key_pattern=r"rf_live_\S+",  # rf_live_ keys run inference; rf_svc_ keys are admin keys [doc: Runflow, keys]
    key_shape="Runflow keys that run models start with rf_live_ (rf_svc_ keys are for administration)",
)
