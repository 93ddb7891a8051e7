"""Black Forest Labs, the official API (api.bfl.ai): FLUX.1 Kontext [pro] and [max].

Create with POST /v1/flux-kontext-pro or /v1/flux-kontext-max (header ``x-key``); the answer is
``{id, polling_url}`` and the job is read by GETting that ``polling_url`` verbatim (it may name a
regional host), falling back to /v1/get_result?id= when it is unknown. ``status`` is a string with
spaces (``Pending``, ``Ready``, ``Content Moderated``...); on Ready ``result.sample`` is a signed URL
that lives 10 minutes [doc][https://docs.bfl.ai/api-reference/utility/get-result].

Facts cited as [doc] are in docs/providers.md, section "Black Forest Labs".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from playground.errors import UnexpectedResponseError, WebhookError
from playground.models import (
    Capabilities,
    GenerationRequest,
    InputImage,
    JobRef,
    JobStatus,
    Price,
    Submission,
    WireRequest,
)
from playground.providers.base import (
    CALLBACK_WINDOW_S,
    Adapter,
    CallbackUpdate,
    PollSchedule,
    ProviderSpec,
    callback_json,
    callback_task_id,
    compact,
    first_str,
    number,
    wire,
)

RESULT_PATH = "/v1/get_result"
POLLING_URL = "polling_url"
CREDIT_USD = 0.01  # one BFL credit [doc: cost]
# Where a polling_url may lead, since it receives the x-key [doc: follow-up URLs]; also the configured base URL.
BFL_HOSTS = frozenset({"api.bfl.ai", "api.eu.bfl.ai", "api.us.bfl.ai"})
WEBHOOK_SECRET_ENV = "BFL_WEBHOOK_SECRET"
SIGNATURE_HEADER = "x-bfl-signature"
# BFL documents no replay window; we use the 300 s the other providers use.
_MODERATED = {
    "request moderated": "the request was flagged by moderation before processing (not charged)",
    "content moderated": "the generated image was flagged by moderation (not charged)",
}
# "Failed" appears only in third-party code; the documented failure is "Error" [doc].
_FAILED = {"error", "failed"}
_RUNNING = {"pending", "reasoning", "generating"}
_MODERATION = re.compile(r"moderat|content.?polic|nsfw|flagged", re.IGNORECASE)


class BflProvider(Adapter):
    """Adapter for the official BFL API."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        """Create the job; a webhook is asked for only when a signing secret is configured (else we poll)."""
        image = input_image(request.image) if request.image else None
        secret = self._config.secret(WEBHOOK_SECRET_ENV)
        webhook = (callback_url, secret) if callback_url and secret else (None, None)
        body = to_payload(request, image, *webhook)
        url = self._config.url(self.spec.models[request.model])
        response = await self._http.create("POST", url, json=body, headers=self._auth())
        answer = self._http.json(response)
        polling_url = first_str(answer.get(POLLING_URL))  # absent in the webhook variant (AsyncWebhookResponse)
        polling_url = polling_url if polling_url and self.may_follow(polling_url) else None
        return self.submitted(
            request,
            first_str(answer.get("id")),
            self._sent(url, body),
            urls={POLLING_URL: polling_url} if polling_url else {},
            billed_usd=number(answer.get("cost"), CREDIT_USD),  # in credits [doc: cost]
        )

    async def status(self, job: JobRef) -> JobStatus:
        """GET the polling_url BFL returned, as is, if it is on a BFL host; else /v1/get_result?id=."""
        url = job.urls.get(POLLING_URL)
        if url and self.may_follow(url):
            response = await self._http.fetch("GET", url, headers=self._auth())
        else:
            params = {"id": job.task_id}
            response = await self._http.fetch("GET", self._config.url(RESULT_PATH), params=params, headers=self._auth())
        body = self._http.json(response)
        if first_str(body.get("status")) is None:
            message = f"{self.spec.label} answered a status read without a status."
            raise UnexpectedResponseError(message, provider=self.spec.name)
        return to_status(body)

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Verify X-BFL-Signature (HMAC-SHA256 of the raw body) and the timestamp, then read the body.

        Without BFL_WEBHOOK_SECRET nothing can be verified: the service confirms with status().
        """
        payload = callback_json(body, self.spec)
        task_id = callback_task_id(payload, ("id", "task_id"), self.spec, "id")
        secret = self._config.secret(WEBHOOK_SECRET_ENV)
        if secret is None:
            return CallbackUpdate(task_id=task_id, status=None)
        verify_signature(headers.get(SIGNATURE_HEADER, ""), body, secret, provider=self.spec.name)
        check_timestamp(payload.get("timestamp"), now, provider=self.spec.name)
        return CallbackUpdate(task_id=task_id, status=to_status(payload))

    def may_follow(self, url: str) -> bool:
        """Whether ``url`` may receive the key: https on a documented BFL host, or under the configured base URL."""
        parts, base = urlsplit(url), urlsplit(self._config.base_url)
        if (parts.scheme, parts.netloc) == (base.scheme, base.netloc):
            return True
        on_bfl = parts.hostname in BFL_HOSTS and parts.port in (None, 443) and parts.username is None
        return parts.scheme == "https" and on_bfl

    def _auth(self) -> dict[str, str]:
        return {"x-key": self._config.key()}

    def _sent(self, url: str, body: dict[str, Any]) -> WireRequest:
        shown = {**body, "webhook_secret": f"${WEBHOOK_SECRET_ENV}"} if "webhook_secret" in body else body
        return wire("POST", url, self._config, shown, auth_header="x-key", auth_scheme="")


def input_image(image: InputImage) -> str:
    """A URL passes through; a local file goes inline as raw base64, no data: prefix [doc]."""
    if image.url:
        return image.url
    return base64.b64encode(image.content or b"").decode()


def to_payload(
    request: GenerationRequest, image: str | None, webhook_url: str | None = None, webhook_secret: str | None = None
) -> dict[str, Any]:
    """The FluxKontextProInputs body (same schema for [max]); the model is in the path, not the body."""
    return compact(
        {
            "prompt": request.prompt,
            "input_image": image,
            "seed": request.seed,
            "aspect_ratio": request.aspect_ratio,
            "output_format": request.output_format,
            "prompt_upsampling": request.prompt_upsampling,
            "safety_tolerance": request.safety_tolerance,
            "webhook_url": webhook_url,
            "webhook_secret": webhook_secret,
        }
    )


def to_status(body: dict[str, Any]) -> JobStatus:
    """Normalise a ResultResponse (or a webhook body). Pending, Reasoning and Generating mean "still
    running" [doc]; a word not documented counts as running too, marked ``unknown``."""
    word = (first_str(body.get("status")) or "").strip()
    key = word.lower()
    if key == "ready":
        return JobStatus(state="succeeded", image_urls=_samples(body.get("result")), raw=body)
    if key in _MODERATED:
        reason = _reason(body) or _MODERATED[key]
        return JobStatus(state="failed", error=reason, error_code=_code(word), moderated=True, raw=body)
    if key == "task not found":
        unknown = "BFL does not know this task id (wrong id, another key's task, or expired)"
        return JobStatus(state="failed", error=unknown, error_code=_code(word), raw=body)
    if key in _FAILED:
        reason = _reason(body) or "generation failed"
        error = body.get("error")
        code = error if isinstance(error, str) and error and " " not in error else _code(word)  # a machine word
        moderated = bool(_MODERATION.search(f"{code} {reason}"))
        return JobStatus(state="failed", error=reason, error_code=code, moderated=moderated, raw=body)
    if key in _RUNNING:
        return JobStatus(state="running", raw=body)
    return JobStatus(state="running", unknown=word, raw=body)


def bfl_signature(body: bytes, secret: str) -> str:
    """``sha256=`` + hex HMAC-SHA256(key = webhook_secret UTF-8, msg = raw body).

    UNCERTAIN [doc]: from BFL's skills repo (webhook-integration.md), not the API reference.
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(header: str, body: bytes, secret: str, *, provider: str) -> None:
    """WebhookError unless ``header`` is the signature of ``body`` under ``secret``."""
    if not header.startswith("sha256="):
        raise WebhookError("BFL callback has no X-BFL-Signature: sha256=... header.", provider=provider)
    if not hmac.compare_digest(bfl_signature(body, secret), header.strip()):
        raise WebhookError("BFL callback signature does not match BFL_WEBHOOK_SECRET.", provider=provider)


def check_timestamp(value: Any, now: float, *, provider: str) -> None:
    """WebhookError when the body's timestamp is more than CALLBACK_WINDOW_S off ``now``.

    Unix seconds (number or digits) or ISO 8601: the skills repo shows "2025-01-15T10:30:00Z".
    No timestamp at all is accepted (the signature still holds).
    """
    if value is None:
        return
    sent = _unix_seconds(value)
    if sent is None:
        raise WebhookError(f"BFL callback timestamp {str(value)[:40]!r} is unreadable.", provider=provider)
    if abs(now - sent) > CALLBACK_WINDOW_S:
        message = f"BFL callback timestamp is more than {CALLBACK_WINDOW_S} s off; not trusted."
        raise WebhookError(message, provider=provider)


def _unix_seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        return datetime.fromisoformat(value).timestamp()  # a naive time would be local; BFL's example says Z
    except ValueError:
        return None


def _samples(result: Any) -> tuple[str, ...]:
    if isinstance(result, dict):
        sample = first_str(result.get("sample"))
        return (sample,) if sample else ()
    return ()


def _reason(body: dict[str, Any]) -> str | None:
    """The reason a job ended without an image: details (dict or text), then message, then error."""
    details = body.get("details")
    if isinstance(details, dict):
        reasons = details.get("Moderation Reasons") or details.get("moderation_reasons")
        if isinstance(reasons, list) and reasons:
            return "flagged for " + ", ".join(str(r) for r in reasons)
        found = first_str(details.get("message"), details.get("error"), details.get("detail"))
        if found:
            return found
    return first_str(details, body.get("message"), body.get("error"))


def _code(status: str) -> str:
    return status.lower().replace(" ", "_")


SPEC: ProviderSpec = ProviderSpec(
    name="bfl",
    label="Black Forest Labs",
    key_env="BFL_API_KEY",
    base_url_env="BFL_BASE_URL",
    default_base_url="https://api.bfl.ai",
    factory=lambda config, http: BflProvider(SPEC, config, http),
    capabilities=Capabilities(
        text_to_image=True,
        edit=True,
        # Any W:H between 21:9 and 9:21 is accepted; these are the ratios the other providers share.
        aspect_ratios=("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"),
        output_formats=("jpeg", "png"),  # webp too, but the neutral request has jpeg|png only
        safety_range=(0, 6),
        safety_range_edit=(0, 6),
        seed=True,
        guidance=False,
        prompt_upsampling=True,
        translation=False,
        callbacks=True,
        upload=False,
        inline_image=True,
    ),
    # BFL's examples poll every 0.5 s; Kontext runs take ~5 s, so 1 s wastes little.
    poll=PollSchedule(first_s=1.0, interval_s=1.0),
    models={"flux-kontext-pro": "/v1/flux-kontext-pro", "flux-kontext-max": "/v1/flux-kontext-max"},  # create paths
    sandbox="bfl",
    prices={
        "flux-kontext-pro": Price(usd=0.04, source="https://docs.bfl.ml/quick_start/pricing"),  # 4 credits x $0.01
        "flux-kontext-max": Price(usd=0.08, source="https://docs.bfl.ml/quick_start/pricing"),  # 8 credits x $0.01
    },
    extra_env={WEBHOOK_SECRET_ENV: ""},
    docs_url="https://docs.bfl.ai/api-reference/models/edit-or-create-an-image-with-flux1-kontext-%5Bpro%5D",
    key_url="https://dashboard.bfl.ai",
    callback_body_signed=True,  # HMAC of the body (not confirmed) [docs/providers.md, Black Forest Labs]
)
