"""Replicate: FLUX.1 Kontext as the official black-forest-labs models.

Create with POST /v1/models/black-forest-labs/flux-kontext-{pro,max}/predictions {"input": {...}}; the
answer is a prediction object whose ``urls.get`` we poll until ``status`` is succeeded, failed or
canceled; ``output`` is the image URI, which expires after 1 hour [doc]. Webhooks carry the
same object, signed the Standard Webhooks way [https://replicate.com/docs/topics/webhooks/verify-webhook].

Facts cited as [doc] are in docs/providers.md, section "Replicate".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from playground.errors import WebhookError
from playground.http import HttpClient
from playground.models import (
    Capabilities,
    GenerationRequest,
    JobRef,
    JobState,
    JobStatus,
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
    check_window,
    compact,
    data_uri,
    first_str,
    number,
    signed_headers,
    span_s,
    wire,
    with_timings,
)

MODEL_OWNER = "black-forest-labs"
PREDICTION_PATH = "/v1/predictions/{id}"
WEBHOOK_SECRET_ENV = "REPLICATE_WEBHOOK_SECRET"  # from GET /v1/webhooks/default/secret -> {"key": "whsec_..."}
WEBHOOK_EVENTS = ["completed"]  # one delivery per job, with the final prediction
# Standard Webhooks rejects timestamps more than 5 minutes off: base.CALLBACK_WINDOW_S.
SECRET_PREFIX = "whsec_"

STATUS_MAP: dict[str, JobState] = {
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",  # GUESS: British spelling, tolerated in case a proxy uses it
    "aborted": "canceled",  # GUESS: seen in newer API descriptions for predictions stopped before running
}
# GUESS [doc]: no moderation field exists; Replicate's safety checker fails the prediction
# with "... flagged as sensitive ... (E005)", so the error text is the only signal.
_MODERATION = re.compile(r"flagged|nsfw|sensitive|safety|\bE005\b", re.IGNORECASE)
_ERROR_CODE = re.compile(r"\b(E\d{3,5})\b")


class ReplicateProvider(Adapter):
    """Adapter for Replicate's predictions API (official-model endpoint)."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        image = request.image
        reference = (image.url or data_uri(image)) if image else None
        body = to_payload(request, reference, callback_url)
        url = self._config.url(f"/v1/models/{self.spec.models[request.model]}/predictions")
        # No "Prefer: wait": we stream each status instead of holding the connection open.
        response = await self._http.create("POST", url, json=body, headers=self._config.bearer())
        prediction = self._http.json(response)
        sent = wire("POST", url, self._config, body)
        task_id = first_str(prediction.get("id"))
        return self.submitted(request, task_id, sent, id_name="prediction id", urls=_urls(prediction))

    async def status(self, job: JobRef) -> JobStatus:
        response = await self._http.fetch("GET", self.poll_url(job), headers=self._config.bearer())
        return to_status(self._http.json(response))

    def poll_url(self, job: JobRef) -> str:
        """``urls.get`` from the create answer, if it lives under our base URL; else the documented path.

        The base-URL check keeps the key from being sent to any host the user did not configure.
        """
        given = job.urls.get("get", "")
        if given.startswith(self._config.base_url.rstrip("/") + "/"):
            return given
        return self._config.url(PREDICTION_PATH.format(id=job.task_id))

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Verify a Standard Webhooks delivery (if a secret is configured) and read its prediction."""
        prediction = callback_json(body, self.spec)
        task_id = callback_task_id(prediction, ("id",), self.spec, "prediction id")
        delivery_id = headers.get("webhook-id") or None
        secret = self._config.secret(WEBHOOK_SECRET_ENV)
        if secret is None:
            return CallbackUpdate(task_id=task_id, status=None, delivery_id=delivery_id)
        verify_webhook(headers, body, secret, now=now, provider=self.spec.name)
        return CallbackUpdate(task_id=task_id, status=to_status(prediction), delivery_id=delivery_id)


def to_payload(request: GenerationRequest, image: str | None, callback_url: str | None) -> dict[str, Any]:
    """The create body: model inputs under ``input``, snake_case as in the model's schema [doc]."""
    inputs = compact(
        {
            "prompt": request.prompt,
            "input_image": image,
            "aspect_ratio": request.aspect_ratio,
            "output_format": "jpg" if request.output_format == "jpeg" else request.output_format,
            "safety_tolerance": request.safety_tolerance,
            "prompt_upsampling": request.prompt_upsampling,
            "seed": request.seed,
        }
    )
    body: dict[str, Any] = {"input": inputs}
    if callback_url:
        body["webhook"] = callback_url
        body["webhook_events_filter"] = list(WEBHOOK_EVENTS)
    return body


def to_status(prediction: dict[str, Any]) -> JobStatus:
    """Normalise a prediction, with Replicate's timestamps and metrics [doc: timings]."""
    metrics = as_dict(prediction.get("metrics"))
    created, started = prediction.get("created_at"), prediction.get("started_at")
    return with_timings(
        _state(prediction),
        total=number(metrics.get("total_time")) or span_s(created, prediction.get("completed_at")),
        queued=span_s(created, started),
        generating=number(metrics.get("predict_time")),
    )


def _state(prediction: dict[str, Any]) -> JobStatus:
    """Normalise a prediction object; a status not documented counts as running, marked ``unknown``."""
    state = STATUS_MAP.get(str(prediction.get("status", "")).strip().lower())
    if state is None:
        return JobStatus(state="running", unknown=str(prediction.get("status")), raw=prediction)
    if state == "succeeded":
        return JobStatus(state=state, image_urls=_output_urls(prediction.get("output")), raw=prediction)
    if state == "failed":
        message = _error_text(prediction.get("error")) or "the prediction failed without a reason"
        found = _ERROR_CODE.search(message)
        return JobStatus(
            state=state,
            error=message,
            error_code=found.group(1) if found else None,
            moderated=bool(_MODERATION.search(message)),
            raw=prediction,
        )
    if state == "canceled":
        reason = _error_text(prediction.get("error")) or "the prediction was canceled"
        return JobStatus(state=state, error=reason, raw=prediction)
    return JobStatus(state=state, raw=prediction)


def webhook_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    """HMAC-SHA256 over ``id.timestamp.body`` with the base64-decoded ``whsec_`` secret (raw bytes)."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookError(f"{WEBHOOK_SECRET_ENV} is not a whsec_ secret (base64 after the prefix).") from None
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def verify_webhook(headers: Mapping[str, str], body: bytes, secret: str, *, now: float, provider: str) -> None:
    """Raise WebhookError unless one ``v1,<base64>`` signature matches and the timestamp is fresh."""
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    webhook_id, timestamp, signatures = signed_headers(headers, names, label="Replicate", provider=provider)
    check_window(timestamp, now, label="Replicate", provider=provider)
    expected = webhook_signature(secret, webhook_id, timestamp, body)
    if not any(hmac.compare_digest(candidate, expected) for candidate in _v1_signatures(signatures)):
        raise WebhookError("Replicate webhook signature does not match.", provider=provider)


def _v1_signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _output_urls(output: Any) -> tuple[str, ...]:
    """``output`` is one URI string for these models; a list (other Replicate models) gives its first."""
    if isinstance(output, str) and output:
        return (output,)
    if isinstance(output, list):
        urls = tuple(u for u in output if isinstance(u, str) and u)
        return urls[:1]
    return ()


def _error_text(error: Any) -> str | None:
    if isinstance(error, dict):
        return first_str(error.get("detail"), error.get("message"), error.get("title"))
    return first_str(error)


def _urls(prediction: dict[str, Any]) -> dict[str, str]:
    urls = prediction.get("urls")
    return {k: v for k, v in urls.items() if isinstance(v, str) and v} if isinstance(urls, dict) else {}


# BFL's list price, assumed for Replicate: its pricing page was not read [doc: cost].
_PRICE_SOURCE = "https://replicate.com/black-forest-labs/flux-kontext-pro"


def _factory(config: ProviderConfig, http: HttpClient) -> ReplicateProvider:
    return ReplicateProvider(SPEC, config, http)


SPEC = ProviderSpec(
    name="replicate",
    label="Replicate",
    key_env="REPLICATE_API_TOKEN",
    base_url_env="REPLICATE_BASE_URL",
    default_base_url="https://api.replicate.com",
    factory=_factory,
    capabilities=Capabilities(
        text_to_image=True,
        edit=True,
        # "match_input_image" is Replicate's default: we send no ratio when the user sets none.
        aspect_ratios=("21:9", "2:1", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "1:2", "9:21"),
        safety_range=(0, 6),
        safety_range_edit=(0, 2),
        seed=True,
        guidance=False,
        translation=False,
        callbacks=True,
        upload=False,
        inline_image=True,  # input_image takes a data: URI [doc]
    ),
    # replicate-python polls every 0.5 s; one read a second is plenty for jobs of several seconds.
    poll=PollSchedule(first_s=1.0, interval_s=1.0),
    models={model: f"{MODEL_OWNER}/{model}" for model in ("flux-kontext-pro", "flux-kontext-max")},
    sandbox="replicate",
    prices={
        "flux-kontext-pro": Price(usd=0.04, source=_PRICE_SOURCE, confirmed=False),
        "flux-kontext-max": Price(
            usd=0.08, source="https://replicate.com/black-forest-labs/flux-kontext-max", confirmed=False
        ),
    },
    extra_env={WEBHOOK_SECRET_ENV: ""},
    docs_url="https://replicate.com/black-forest-labs/flux-kontext-pro/api",
    max_reads_per_minute=3000,  # 3000 requests/minute outside creates [doc: errors]
    key_url="https://replicate.com/account/api-tokens",
    callback_body_signed=True,  # Standard Webhooks: id.timestamp.body [docs/providers.md, Replicate]
    key_pattern=r"r8_\S{37}",  # "40-character strings that always start with r8_" [doc: Replicate, keys]
    key_shape="Replicate tokens start with r8_ and are 40 characters long",
)
