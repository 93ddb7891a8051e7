"""KIE AI and FluxAPI.ai: one protocol, two configurations.

Create with POST /api/v1/flux/kontext/generate, poll GET /api/v1/flux/kontext/record-info?taskId=.
Answers are a {code, msg, data} envelope that can carry an error inside an HTTP 200 [doc]
[doc], so every answer is checked for both. ``successFlag``: 0 generating, 1 success,
2 create failed, 3 generate failed. The result is data.response.resultImageUrl; originImageUrl
lives only 10 minutes [doc: FluxAPI.ai], which is why the service downloads at once.

Facts cited as [doc] are in docs/providers.md, section "KIE AI" (and "FluxAPI.ai").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from playground.errors import UnexpectedResponseError, WebhookError, error_for_status
from playground.http import HttpClient
from playground.models import Capabilities, GenerationRequest, InputImage, JobRef, JobStatus, Submission
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
    signed_headers,
    span_s,
    wire,
    with_timings,
)

GENERATE_PATH = "/api/v1/flux/kontext/generate"
RECORD_PATH = "/api/v1/flux/kontext/record-info"
UPLOAD_PATH = "/api/file-base64-upload"  # KIE File Upload API, base https://kieai.redpandaai.co
UPLOAD_FOLDER = "kontext-playground"
_MODERATION = re.compile(r"flag|prohibit|content polic|nsfw|moderat|sensitive|violat", re.IGNORECASE)
_FAILED_FLAGS = {2: "the task could not be created", 3: "generation failed"}
HMAC_KEY_ENV = "KIE_WEBHOOK_HMAC_KEY"
# KIE documents no window for X-Webhook-Timestamp: base.CALLBACK_WINDOW_S, as for the others.


class KieProvider(Adapter):
    """Adapter for the KIE protocol (also spoken by FluxAPI.ai)."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        image = await self._image_ref(request.image) if request.image else None
        body = to_payload(request, self.spec.models[request.model], image, callback_url)
        url = self._config.url(GENERATE_PATH)
        response = await self._http.create("POST", url, json=body, headers=self._config.bearer(), check=self._check)
        task_id = first_str(_data(response).get("taskId"))
        return self.submitted(request, task_id, wire("POST", url, self._config, body), id_name="taskId")

    async def status(self, job: JobRef) -> JobStatus:
        url = self._config.url(RECORD_PATH)
        params = {"taskId": job.task_id}
        response = await self._http.fetch("GET", url, params=params, headers=self._config.bearer(), check=self._check)
        return to_status(_data(response))

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Always a nudge: status() says how the job ended, never the body.

        KIE signs only taskId.timestamp [doc]: a valid signature proves which task finished, not what the body
        claims (state, error text, result URL), so a verified delivery only wakes the job early; a forged one
        (when KIE_WEBHOOK_HMAC_KEY is set) is refused. FluxAPI.ai signs nothing.
        """
        payload = callback_json(body, self.spec)
        task_id = callback_task_id(as_dict(payload.get("data")), ("taskId", "task_id"), self.spec, "data.taskId")
        key = self._config.secret(HMAC_KEY_ENV)
        if key is None:
            return CallbackUpdate(task_id=task_id, status=None)
        verify_kie_signature(headers, task_id, key, now=now, provider=self.spec.name)
        return CallbackUpdate(task_id=task_id, status=None, delivery_id=f"{task_id}:{headers['x-webhook-timestamp']}")

    async def _image_ref(self, image: InputImage) -> str:
        if image.url:
            return image.url
        return await self._upload(image)

    async def _upload(self, image: InputImage) -> str:
        """Upload a local file with KIE's base64 upload; a fixed name per content makes a retry harmless."""
        base = self._config.extra.get("KIE_UPLOAD_BASE_URL", self._config.base_url).rstrip("/")
        ext = (image.mime_type or "image/png").split("/")[-1]
        name = f"{hashlib.sha256(image.content or b'').hexdigest()[:24]}.{ext}"
        body = {"base64Data": data_uri(image), "uploadPath": UPLOAD_FOLDER, "fileName": name}
        response = await self._http.fetch(
            "POST", base + UPLOAD_PATH, json=body, headers=self._config.bearer(), check=self._check
        )
        url = first_str(_data(response).get("downloadUrl"), _data(response).get("fileUrl"))
        if url is None:
            raise UnexpectedResponseError(
                f"{self.spec.label}'s upload returned no downloadUrl.", provider=self.spec.name
            )
        return url

    def _check(self, response: httpx.Response) -> None:
        """Raise the error an HTTP 200 envelope may carry (code != 200)."""
        body = self._http.json(response)
        code = _code(body.get("code", 200))
        if code is not None and code != 200 or body.get("success") is False:
            status = code if code is not None and code != 200 else 500
            raise error_for_status(
                self.spec.label,
                status,
                first_str(body.get("msg"), body.get("message")),
                provider=self.spec.name,
                key_env=self._config.key_env,
            )


def to_payload(request: GenerationRequest, model: str, image: str | None, callback_url: str | None) -> dict[str, Any]:
    """The generate body, with KIE's camelCase names [doc]; ``model`` is KIE's name for the model."""
    return compact(
        {
            "prompt": request.prompt,
            "model": model,
            "aspectRatio": request.aspect_ratio,
            "outputFormat": request.output_format,
            "inputImage": image,
            "enableTranslation": request.enable_translation,
            "promptUpsampling": request.prompt_upsampling,
            "safetyTolerance": request.safety_tolerance,
            "callBackUrl": callback_url,
        }
    )


def to_status(data: dict[str, Any]) -> JobStatus:
    """Normalise a record-info ``data`` object, with KIE's createTime/completeTime [doc: timings]."""
    return with_timings(_state(data), total=span_s(data.get("createTime"), data.get("completeTime")))


def _state(data: dict[str, Any]) -> JobStatus:
    """Normalise a record-info ``data`` object: successFlag 0 generating, 1 success, 2 and 3 failed.

    Any other flag (or none) is not in the documented list: still running, marked ``unknown``.
    """
    raw_flag = data.get("successFlag")
    flag = _code(raw_flag)
    if flag == 0:
        return JobStatus(state="running", raw=data)
    if flag == 1:
        return JobStatus(state="succeeded", image_urls=_result_urls(data.get("response")), raw=data)
    if flag in _FAILED_FLAGS:
        message = first_str(data.get("errorMessage")) or _FAILED_FLAGS[flag]
        code = data.get("errorCode")
        return JobStatus(
            state="failed",
            error=message,
            error_code=str(code) if code is not None else f"successFlag={flag}",
            moderated=bool(_MODERATION.search(message)),
            raw=data,
        )
    return JobStatus(state="running", unknown=f"successFlag {raw_flag!r}", raw=data)


def kie_signature(task_id: str, timestamp: str, key: str) -> str:
    """base64(HMAC-SHA256(key, taskId + "." + timestamp)); the body is not signed [doc]."""
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify_kie_signature(headers: Mapping[str, str], task_id: str, key: str, *, now: float, provider: str) -> None:
    names = ("x-webhook-timestamp", "x-webhook-signature")
    timestamp, signature = signed_headers(headers, names, label="KIE", provider=provider)
    check_window(timestamp, now, label="KIE", provider=provider)
    if not hmac.compare_digest(kie_signature(task_id, timestamp, key), signature):
        raise WebhookError("KIE callback signature does not match.", provider=provider)


def _code(value: Any) -> int | None:
    """The envelope's code: documented as an integer; a digit string is read too (tolerant in what we accept)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _result_urls(response: Any) -> tuple[str, ...]:
    if isinstance(response, str):  # seen as a JSON string in third-party code [doc]
        try:
            response = json.loads(response)
        except ValueError:
            return ()
    if not isinstance(response, dict):
        return ()
    url = first_str(response.get("resultImageUrl"))
    if url:
        return (url,)
    urls = response.get("resultUrls")
    return tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else ()


def _data(response: httpx.Response) -> dict[str, Any]:
    return as_dict(response.json().get("data"))


_CAPS = Capabilities(
    text_to_image=True,
    edit=True,
    # The quickstarts list 16:21 ("Ultra-tall") beside the API reference's six; not confirmed [docs/providers.md,
    # KIE AI]. Tolerant in what we accept: the user may ask for it, and it is sent as documented.
    aspect_ratios=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "16:21"),
    safety_range=(0, 6),
    safety_range_edit=(0, 2),
    translation=True,
    callbacks=True,
)

_MODELS = {"flux-kontext-pro": "flux-kontext-pro", "flux-kontext-max": "flux-kontext-max"}  # the body's "model"
# The quickstarts show a 3 s wait between status reads [doc: FluxAPI.ai][doc].
_POLL = PollSchedule(first_s=2.0, interval_s=3.0)


def _kie(config: ProviderConfig, http: HttpClient) -> KieProvider:
    return KieProvider(KIE, config, http)


def _fluxapi(config: ProviderConfig, http: HttpClient) -> KieProvider:
    return KieProvider(FLUXAPI, config, http)


KIE = ProviderSpec(
    name="kie",
    label="KIE AI",
    key_env="KIE_API_KEY",
    base_url_env="KIE_BASE_URL",
    default_base_url="https://api.kie.ai",
    factory=_kie,
    capabilities=_CAPS.model_copy(update={"upload": True}),
    poll=_POLL,
    models=_MODELS,
    sandbox="kie",
    prices={},  # KIE publishes only "30-50 % below official" [doc]: unknown per image
    extra_env={"KIE_UPLOAD_BASE_URL": "https://kieai.redpandaai.co", HMAC_KEY_ENV: ""},
    docs_url="https://docs.kie.ai/flux-kontext-api/generate-or-edit-image",
    key_url="https://kie.ai/api-key",
)

FLUXAPI = ProviderSpec(
    name="fluxapi",
    label="FluxAPI.ai",
    key_env="FLUXAPI_API_KEY",
    base_url_env="FLUXAPI_BASE_URL",
    default_base_url="https://api.fluxapi.ai",
    factory=_fluxapi,
    capabilities=_CAPS,  # no upload API documented for FluxAPI.ai
    poll=_POLL,
    models=_MODELS,
    sandbox="kie",
    prices={},  # no price published [doc]
    docs_url="https://docs.fluxapi.ai/flux-kontext-api/quickstart",
    key_url="https://fluxapi.ai/api-key",  # not confirmed: the docs name no URL [doc: FluxAPI.ai]
)
