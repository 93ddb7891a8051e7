"""fal.ai queue API for FLUX.1 Kontext [pro]/[max].

Submit with POST {queue}/<endpoint-id> (the model input is the whole body; ``?fal_webhook=`` for a
callback), then follow the ``status_url`` it returns (HTTP 202 IN_QUEUE / IN_PROGRESS, 200 COMPLETED)
and, once COMPLETED, GET its ``response_url`` for the model output ``{"images": [{"url"...}]}``.
The returned URLs drop the endpoint's sub-path (``fal-ai/flux-pro/requests/{id}``) [doc]
[https://fal.ai/docs/api-reference/inference-api].

Facts cited as [doc] are in docs/providers.md, section "fal.ai".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from playground.errors import ProviderHTTPError, WebhookError
from playground.http import error_message
from playground.models import Capabilities, GenerationRequest, JobRef, JobState, JobStatus, ModelId, Price, Submission
from playground.providers.base import (
    Adapter,
    CallbackUpdate,
    PollSchedule,
    ProviderSpec,
    as_dict,
    callback_json,
    callback_task_id,
    check_window,
    compact,
    data_uri,
    first_str,
    number,
    signed_headers,
    wire,
    with_timings,
)

APP_ID = "fal-ai/flux-pro"  # owner/app: what the requests/{id} URLs are built on
# The edit endpoint of each model; text-to-image is the same id + TEXT_TO_IMAGE [doc].
ENDPOINTS: dict[ModelId, str] = {
    "flux-kontext-pro": "fal-ai/flux-pro/kontext",
    "flux-kontext-max": "fal-ai/flux-pro/kontext/max",
}
TEXT_TO_IMAGE = "/text-to-image"
# FAILED / CANCELED appear only in a third-party JSON schema (api-evangelist/fal-ai); a word not listed is unknown.
_STATES: dict[str, JobState] = {
    "IN_QUEUE": "queued",
    "IN_PROGRESS": "running",
    "FAILED": "failed",
    "CANCELED": "canceled",
    "CANCELLED": "canceled",
}
# fal's typed model errors: 422 content_policy_violation, "flagged by a content checker"
# [https://fal.ai/docs/documentation/model-apis/errors.md]; the HTTP layer keeps only the message.
_MODERATION = re.compile(r"content.?polic|flagged|nsfw|moderat", re.IGNORECASE)
NSFW_REASON = "fal.ai's safety checker flagged the output (has_nsfw_concepts) and blanked the image"
PUBLIC_KEYS_ENV = "FAL_WEBHOOK_PUBLIC_KEYS"
# The +-300 s window on X-Fal-Webhook-Timestamp (base.CALLBACK_WINDOW_S) is from third-party code [doc].
_NOT_JOB_FAILURES = frozenset({401, 403, 429})


class FalProvider(Adapter):
    """Adapter for fal.ai's queue (submit / status / result)."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        image = request.image
        image_url = (image.url or data_uri(image)) if image else None
        body = to_payload(request, image_url)
        url = self._config.url(f"/{endpoint(self.spec.models[request.model], is_edit=request.is_edit)}")
        if callback_url:
            url += "?" + urlencode({"fal_webhook": callback_url})
        response = await self._http.create("POST", url, json=body, headers=self._auth())
        data = self._http.json(response)
        urls = {kind: data.get(f"{kind}_url") for kind in ("status", "response", "cancel")}
        kept = {kind: url for kind, url in urls.items() if isinstance(url, str) and self._same_origin(url)}
        sent = wire("POST", url, self._config, body, auth_scheme="Key ")
        return self.submitted(request, first_str(data.get("request_id")), sent, id_name="request_id", urls=kept)

    async def status(self, job: JobRef) -> JobStatus:
        response = await self._http.fetch("GET", self._url(job, "status"), headers=self._auth())
        data = self._http.json(response)
        if str(data.get("status", "")).upper() != "COMPLETED":
            return to_status(data)
        output = await self._output(self._url(job, "response"))
        return output if isinstance(output, JobStatus) else to_status(data, output)

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Verify fal's ED25519 signature when public keys are configured, then read the delivery."""
        payload = callback_json(body, self.spec)
        request_id = callback_task_id(payload, ("request_id",), self.spec, "request_id")
        keys = public_keys(self._config.extra.get(PUBLIC_KEYS_ENV, ""), provider=self.spec.name)
        if not keys:
            return CallbackUpdate(task_id=request_id, status=None)
        signed_id, timestamp = verify_fal_signature(headers, body, keys, now=now, provider=self.spec.name)
        if signed_id not in (request_id, payload.get("gateway_request_id")):
            raise WebhookError(f"{self.spec.label} callback signs another request id.", provider=self.spec.name)
        status = callback_status(payload)
        return CallbackUpdate(task_id=request_id, status=status, delivery_id=f"{request_id}:{timestamp}")

    async def _output(self, url: str) -> dict[str, Any] | JobStatus:
        """The model output; a 4xx answer (a 422 ``detail``, say) means the job failed, not the request."""
        try:
            response = await self._http.fetch("GET", url, headers=self._auth())
        except ProviderHTTPError as exc:
            status = exc.status_code or 0
            if not 400 <= status < 500 or status in _NOT_JOB_FAILURES:
                raise
            return result_failure(status, _detail(exc))
        return self._http.json(response)

    def _url(self, job: JobRef, kind: str) -> str:
        """The URL submit returned, else the documented owner/app form (resuming by id alone)."""
        found = first_str(job.urls.get(kind), job.urls.get(f"{kind}_url"))
        if found and self._same_origin(found):
            return found
        suffix = "/status" if kind == "status" else ""
        return self._config.url(f"/{APP_ID}/requests/{job.task_id}{suffix}")

    def _same_origin(self, url: str) -> bool:
        # The key goes with every read: never follow a returned URL to a host other than the configured queue.
        return urlsplit(url)[:2] == urlsplit(self._config.base_url)[:2]

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._config.key()}"}


def endpoint(edit_endpoint: str, *, is_edit: bool) -> str:
    """The endpoint id for an edit, or its text-to-image sibling."""
    return edit_endpoint if is_edit else edit_endpoint + TEXT_TO_IMAGE


def to_payload(request: GenerationRequest, image_url: str | None) -> dict[str, Any]:
    """The model input, in fal's snake_case names; num_images (default 1) and sync_mode are never sent."""
    tolerance = request.safety_tolerance
    return compact(
        {
            "prompt": request.prompt,
            "image_url": image_url,
            "seed": request.seed,
            "guidance_scale": request.guidance,
            "output_format": request.output_format,
            "safety_tolerance": str(tolerance) if tolerance is not None else None,  # a STRING enum "1".."6"
            "enhance_prompt": request.prompt_upsampling,
            "aspect_ratio": request.aspect_ratio,
        }
    )


def to_status(data: dict[str, Any], output: dict[str, Any] | None = None) -> JobStatus:
    """Normalise a queue status (and the output once COMPLETED), with fal's inference time [doc: timings]."""
    metrics, timings = as_dict(data.get("metrics")), as_dict((output or {}).get("timings"))
    generating = number(metrics.get("inference_time")) or number(timings.get("inference"))
    return with_timings(_state(data, output), generating=generating)


def _state(data: dict[str, Any], output: dict[str, Any] | None = None) -> JobStatus:
    """Normalise a queue status; ``output`` is the model output read from response_url once COMPLETED."""
    word = str(data.get("status") or "").upper()
    if word != "COMPLETED":
        state = _STATES.get(word)
        if state is None:
            return JobStatus(state="running", unknown=str(data.get("status")), raw=data)
        error = first_str(data.get("error")) if state == "failed" else None
        return JobStatus(state=state, error=error, raw=data)
    error = first_str(data.get("error"))
    if error:  # a Completed may carry error / error_type [brief; fal_client Completed]
        code = first_str(data.get("error_type"))
        return JobStatus(state="failed", error=error, error_code=code, moderated=_is_moderation(error, code), raw=data)
    return output_status(output or {})


def output_status(output: dict[str, Any]) -> JobStatus:
    """A model output as a status. fal blanks images its checker flags, so a flagged image is no result."""
    images = output.get("images")
    if not isinstance(images, list):
        single = output.get("image")  # single-image models answer {"image": {...}}; tolerate it
        images = [single] if isinstance(single, dict) else []
    flags = output.get("has_nsfw_concepts")
    flags = flags if isinstance(flags, list) else []
    urls = tuple(
        image["url"]
        for i, image in enumerate(images)
        if isinstance(image, dict) and isinstance(image.get("url"), str) and not (i < len(flags) and flags[i] is True)
    )
    if not urls and any(flag is True for flag in flags):
        return JobStatus(state="failed", error=NSFW_REASON, error_code="has_nsfw_concepts", moderated=True, raw=output)
    return JobStatus(state="succeeded", image_urls=urls, raw=output)


def result_failure(status: int, reason: str) -> JobStatus:
    """A result fetch answered ``status`` (4xx): the job failed for ``reason``."""
    return JobStatus(state="failed", error=reason, error_code=str(status), moderated=_is_moderation(reason, None))


def callback_status(payload: dict[str, Any]) -> JobStatus | None:
    """A webhook body as a status; None when it carries no usable payload (the service then asks status())."""
    inner = payload.get("payload")
    word = str(payload.get("status") or "").upper()
    if word == "OK" and isinstance(inner, dict):
        return output_status(inner)
    if word == "ERROR":
        error = first_str(payload.get("error"))
        reason = error_message(inner) or error or first_str(payload.get("payload_error")) or "generation failed"
        code = _status_code(error) or "ERROR"
        moderated = _is_moderation(reason, None)
        return JobStatus(state="failed", error=reason, error_code=code, moderated=moderated, raw=payload)
    return None


def fal_signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """UNCERTAIN [doc; third-party code]: request_id, user_id, timestamp, sha256_hex(body), newline-joined."""
    return f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def verify_fal_signature(
    headers: Mapping[str, str], body: bytes, keys: list[Ed25519PublicKey], *, now: float, provider: str
) -> tuple[str, str]:
    """Check X-Fal-Webhook-* against any of ``keys``; return (signed request id, timestamp)."""
    names = tuple(f"x-fal-webhook-{part}" for part in ("request-id", "user-id", "timestamp", "signature"))
    request_id, user_id, timestamp, signature = signed_headers(headers, names, label="fal.ai", provider=provider)
    check_window(timestamp, now, label="fal.ai", provider=provider)
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        raise WebhookError("fal.ai callback signature is not hex.", provider=provider) from None
    message = fal_signed_message(request_id, user_id, timestamp, body)
    for key in keys:
        try:
            key.verify(raw, message)
            return request_id, timestamp
        except InvalidSignature:
            continue
    raise WebhookError("fal.ai callback signature does not match any configured public key.", provider=provider)


def public_keys(value: str, *, provider: str = "fal") -> list[Ed25519PublicKey]:
    """Ed25519 keys from FAL_WEBHOOK_PUBLIC_KEYS: comma-separated base64url raw keys (the JWKS ``x`` values).

    Production would load them from fal's JWKS, https://rest.alpha.fal.ai/.well-known/jwks.json (also seen:
    rest.fal.ai) — UNCERTAIN [doc]; parse_callback does no network I/O, so they come from settings.
    """
    keys = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            raw = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            message = f"{PUBLIC_KEYS_ENV} holds a value that is not a base64url 32-byte Ed25519 public key."
            raise WebhookError(message, provider=provider) from None
    return keys


def _detail(exc: ProviderHTTPError) -> str:
    # error_for_status writes "<label> <words> (HTTP n): <detail>."; here the provider's detail alone reads best.
    _, found, detail = exc.message.partition(f"(HTTP {exc.status_code}): ")
    return detail.rstrip(".") if found else exc.message


def _is_moderation(reason: str, code: str | None) -> bool:
    return code == "content_policy_violation" or bool(_MODERATION.search(reason))


def _status_code(error: str | None) -> str | None:
    match = re.search(r"\b([45]\d\d)\b", error or "")
    return match.group(1) if match else None


SPEC: ProviderSpec = ProviderSpec(
    name="fal",
    label="fal.ai",
    key_env="FAL_KEY",
    base_url_env="FAL_QUEUE_BASE_URL",
    default_base_url="https://queue.fal.run",
    factory=lambda config, http: FalProvider(SPEC, config, http),
    capabilities=Capabilities(
        text_to_image=True,
        edit=True,
        aspect_ratios=("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"),
        safety_range=(1, 6),
        safety_range_edit=(1, 6),
        seed=True,
        guidance=True,
        translation=False,
        callbacks=True,
        upload=False,
        inline_image=True,  # image_url takes a data: URI [doc]
    ),
    poll=PollSchedule(first_s=1.0, interval_s=1.0),
    models=ENDPOINTS,
    sandbox="fal",
    prices={
        "flux-kontext-pro": Price(usd=0.04, source="https://fal.ai/models/fal-ai/flux-pro/kontext"),
        # Not on fal's own page; a price aggregator's figure [doc: cost].
        "flux-kontext-max": Price(usd=0.08, source="https://fal.ai/pricing", confirmed=False),
    },
    extra_env={PUBLIC_KEYS_ENV: ""},  # public keys, not a secret
    docs_url="https://fal.ai/models/fal-ai/flux-pro/kontext/api",
    key_url="https://fal.ai/dashboard/keys",
    callback_body_signed=True,  # Ed25519 over ids, time and the body's hash (not confirmed) [docs/providers.md, fal.ai]
)
