"""RunAPI.ai (`@runapi.ai/flux-kontext`): bare JSON objects, errors as HTTP status + ``{"error": {...}}``.

Create with POST /api/v1/flux_kontext/text_to_image -> {id, status?}; poll GET .../text_to_image/{id}
-> {id, status, images: [{url, origin_url}], error}; status pending|processing|completed|failed.
Local inputs go through the Files API (POST /api/v1/files) first. Callbacks are HMAC-signed
(X-Callback-*) [doc][repo: runapi-ai/flux-kontext-sdk][repo: runapi-ai/core-sdk].

Facts cited as [doc] are in docs/providers.md, section "RunAPI.ai".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from playground.errors import UnexpectedResponseError, WebhookError
from playground.models import Capabilities, GenerationRequest, InputImage, JobRef, JobState, JobStatus, Submission
from playground.providers.base import (
    Adapter,
    CallbackUpdate,
    PollSchedule,
    ProviderSpec,
    callback_json,
    callback_task_id,
    check_window,
    compact,
    first_str,
    signed_headers,
    wire,
)

TASK_PATH = "/api/v1/flux_kontext/text_to_image"
FILES_PATH = "/api/v1/files"
CALLBACK_SECRET_ENV = "RUNAPI_CALLBACK_SECRET"
# "reject if |now - ts| > 300" [doc]: base.CALLBACK_WINDOW_S.
TASK_ID_HEADER = "x-runapi-task-id"  # set on responses when a task exists [repo: runapi-ai/core-sdk README.md]

# The core SDK's TaskStatus is pending|processing|completed|failed [core-sdk js/src/types.ts]; the Java
# poller also normalises success/error/generate_failed/create_task_failed [java runapi-core Poller.java].
# The JS core treats anything else as still running [core-sdk js/src/polling.ts]; we do too, and say so.
_STATES: dict[str, JobState] = {
    "pending": "queued",
    "processing": "running",
    "completed": "succeeded",
    "success": "succeeded",
    "failed": "failed",
    "error": "failed",
    "generate_failed": "failed",
    "create_task_failed": "failed",
}
# Only example failure text documented: "Content policy violation" [flux-kontext-sdk js tests].
_MODERATION = re.compile(r"content polic|nsfw|moderat|flagged|prohibit|sensitive|violat|safety", re.IGNORECASE)


class RunApiProvider(Adapter):
    """Adapter for RunAPI.ai's flux_kontext/text_to_image task protocol."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        image_url = await self._image_url(request.image) if request.image else None
        body = to_payload(request, self.spec.models[request.model], image_url, callback_url)
        url = self._config.url(TASK_PATH)
        # A fresh key per create: never retried by us, but it makes any retry by a proxy in between
        # harmless (same key + same body -> same task) [repo: runapi-ai/core-sdk README.md].
        extra = {"Accept": "application/json", "Idempotency-Key": str(uuid.uuid4())}
        response = await self._http.create("POST", url, json=body, headers={**self._headers(), **extra})
        task_id = _task_id(self._http.json(response), response.headers)
        sent = wire("POST", url, self._config, body)
        return self.submitted(request, task_id, sent.model_copy(update={"headers": {**sent.headers, **extra}}))

    async def status(self, job: JobRef) -> JobStatus:
        url = self._config.url(f"{TASK_PATH}/{job.task_id}")
        response = await self._http.fetch("GET", url, headers=self._headers())
        return to_status(self._http.json(response))

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Verify the X-Callback-* signature when a secret is configured; without one, the service confirms."""
        payload = callback_json(body, self.spec)
        task_id = callback_task_id(payload, ("id", "task_id"), self.spec, "id")
        delivery_id = headers.get("x-callback-id") or None
        secret = self._config.secret(CALLBACK_SECRET_ENV)
        if secret is None:
            return CallbackUpdate(task_id=task_id, status=None, delivery_id=delivery_id)
        verify_signature(headers, body, secret, now=now, provider=self.spec.name)
        return CallbackUpdate(task_id=task_id, status=to_status(payload), delivery_id=delivery_id)

    async def _image_url(self, image: InputImage) -> str:
        if image.url:
            return image.url
        return await self._upload(image)

    async def _upload(self, image: InputImage) -> str:
        """Register a local file with the Files API and return its temporary URL [core-sdk files.py].

        Inline base64 keeps this to one request. The SDK's alternative for big files is
        POST /api/v1/files/prepare -> PUT upload_url (exact headers, no auth) -> POST
        /api/v1/files/confirm {signed_id}; inputs are capped at 10 MB here, so one JSON body is fine.
        Retrying it (fetch) is harmless: at worst a second temporary file, and no job is started.
        """
        body = {
            "source": {"type": "base64", "data": base64.b64encode(image.content or b"").decode()},
            "file_name": image.filename,
        }
        url = self._config.url(FILES_PATH)
        response = await self._http.fetch("POST", url, json=body, headers=self._headers())
        file_url = first_str(self._http.json(response).get("url"))
        if file_url is None:
            raise UnexpectedResponseError(f"{self.spec.label}'s file upload returned no url.", provider=self.spec.name)
        return file_url

    def _headers(self) -> dict[str, str]:
        return {**self._config.bearer(), "Accept": "application/json"}


def to_payload(
    request: GenerationRequest, model: str, image_url: str | None, callback_url: str | None
) -> dict[str, Any]:
    """The create body with the current (SDK >= v0.2.5) field names [flux-kontext-sdk js/src/types.ts].

    SDK v0.2.3 called these input_image / prompt_upsampling and had upload_cn; v0.2.5
    renamed them to align with "the upstream Input Contract" [flux-kontext-sdk CHANGELOG].
    UNCERTAIN [doc]: whether the server still accepts the old names; we send only the new.
    """
    return compact(
        {
            "model": model,
            "prompt": request.prompt,
            "aspect_ratio": request.aspect_ratio,
            "output_format": request.output_format,
            "source_image_url": image_url,
            "enable_translation": request.enable_translation,
            "enable_prompt_expansion": True if request.prompt_upsampling else None,  # server default is false
            "safety_tolerance": request.safety_tolerance,
            "callback_url": callback_url,
        }
    )


def to_status(body: dict[str, Any]) -> JobStatus:
    """Normalise a task object (a status read or a callback body)."""
    word = str(body.get("status") or "").strip().lower()
    state = _STATES.get(word)
    if state is None:
        return JobStatus(state="running", unknown=str(body.get("status")), raw=body)
    if state == "succeeded":
        return JobStatus(state=state, image_urls=_image_urls(body.get("images")), raw=body)
    if state == "failed":
        message, code = _error(body.get("error"))
        message = message or first_str(body.get("message"), body.get("error_message")) or "generation failed"
        return JobStatus(
            state="failed",
            error=message,
            error_code=code or word,
            moderated=bool(_MODERATION.search(message)),
            raw=body,
        )
    return JobStatus(state=state, raw=body)


def callback_signature(delivery_id: str, timestamp: str, body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(b64decode(secret), f"{id}.{ts}." + raw body)) [doc].

    UNCERTAIN [doc]: the signed id could be the task id; we sign the X-Callback-Id header
    value, because the SDK's verify(raw, id, ts, sig) sits right next to that header list.
    """
    key = base64.b64decode(secret, validate=True)
    mac = hmac.new(key, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str, *, now: float, provider: str) -> None:
    """Raise WebhookError unless the delivery is signed with ``secret`` within the 300 s window."""
    names = ("x-callback-id", "x-callback-timestamp", "x-callback-signature")
    delivery_id, timestamp, signature = signed_headers(headers, names, label="RunAPI.ai", provider=provider)
    check_window(timestamp, now, label="RunAPI.ai", provider=provider)
    try:
        expected = callback_signature(delivery_id, timestamp, body, secret)
    except (binascii.Error, ValueError):
        message = f"{CALLBACK_SECRET_ENV} is not base64 text, so callbacks cannot be verified."
        raise WebhookError(message, provider=provider) from None
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookError("RunAPI.ai callback signature does not match.", provider=provider)


def _task_id(body: dict[str, Any], headers: httpx.Headers) -> str | None:
    return first_str(body.get("id"), body.get("task_id"), headers.get(TASK_ID_HEADER))


def _image_urls(images: Any) -> tuple[str, ...]:
    """images[].url (the CDN copy), else images[].origin_url ("pre-CDN original") [flux-kontext-sdk types.ts]."""
    if not isinstance(images, list):
        return ()
    urls = (first_str(i.get("url"), i.get("origin_url")) if isinstance(i, dict) else first_str(i) for i in images)
    return tuple(u for u in urls if u)


def _error(value: Any) -> tuple[str | None, str | None]:
    """(message, code) from ``error``: a string in the docs, an object like the HTTP error body tolerated."""
    if isinstance(value, dict):
        code = value.get("code")
        return first_str(value.get("message"), value.get("detail")), str(code) if code is not None else None
    return first_str(value), None


SPEC: ProviderSpec = ProviderSpec(
    name="runapi",
    label="RunAPI.ai",
    key_env="RUNAPI_API_KEY",
    base_url_env="RUNAPI_BASE_URL",
    default_base_url="https://runapi.ai",
    factory=lambda config, http: RunApiProvider(SPEC, config, http),
    capabilities=Capabilities(
        text_to_image=True,
        edit=True,
        aspect_ratios=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
        safety_range=(0, 6),
        safety_range_edit=(0, 2),
        translation=True,
        callbacks=True,
        upload=True,
    ),
    # "run() polls every 2 s" [doc]; same default in both cores [core-sdk constants].
    poll=PollSchedule(first_s=2.0, interval_s=2.0),
    models={"flux-kontext-pro": "flux-kontext-pro", "flux-kontext-max": "flux-kontext-max"},
    sandbox="runapi",
    # The SDK says "do not hardcode prices" and publishes none [doc]: unknown.
    prices={},
    extra_env={CALLBACK_SECRET_ENV: ""},
    docs_url="https://runapi.ai/docs#flux-kontext",
    key_url="https://runapi.ai/api_keys",
    callback_body_signed=True,  # HMAC over id.timestamp.body [docs/providers.md, RunAPI.ai]
)
