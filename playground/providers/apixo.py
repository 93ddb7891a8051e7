"""APIXO (apixo.ai): FLUX.1 Kontext [pro]/[max] behind one model id, ``flux-kontext``.

Create with POST /api/v1/generateTask/flux-kontext ({request_type, callback_url?, input}), poll
GET /api/v1/statusTask/flux-kontext?taskId=. Answers are a {code, message, data} envelope on real
HTTP statuses; ``data.state`` is pending|processing|success|failed and the result URL sits in
``data.resultJson``, a JSON *string* [doc][https://apixo.ai/docs/models/image/flux-kontext].

Facts cited as [doc] are in docs/providers.md, section "APIXO".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from playground.errors import UnexpectedResponseError, error_for_status
from playground.models import Capabilities, GenerationRequest, JobRef, JobState, JobStatus, Price, Submission
from playground.providers.base import (
    Adapter,
    CallbackUpdate,
    PollSchedule,
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

MODEL_ID = "flux-kontext"
CREATE_PATH = f"/api/v1/generateTask/{MODEL_ID}"
STATUS_PATH = f"/api/v1/statusTask/{MODEL_ID}"
MODES = {"flux-kontext-pro": "pro", "flux-kontext-max": "max"}
# processing_r2 is seen in third-party code only [doc]; any state not listed is unknown.
_STATES: dict[str, JobState] = {
    "pending": "queued",
    "processing": "running",
    "processing_r2": "running",
    "success": "succeeded",
    "failed": "failed",
}
MODERATION_CODES = frozenset(
    {"CONTENT_VIOLATION", "NSFW_DETECTED"}
)  # [https://apixo.ai/docs/api-reference/error-codes]


class ApixoProvider(Adapter):
    """Adapter for APIXO's generateTask / statusTask protocol."""

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        # No upload API or data: URIs are documented, so capabilities reject local files before we get here.
        image_url = request.image.url if request.image else None
        body = to_payload(request, self.spec.models[request.model], image_url, callback_url)
        url = self._config.url(CREATE_PATH)
        headers = self._config.bearer()
        response = await self._http.create("POST", url, json=body, headers=headers, check=self._check)
        task_id = first_str(self._data(response).get("taskId"))
        return self.submitted(request, task_id, wire("POST", url, self._config, body), id_name="taskId")

    async def status(self, job: JobRef) -> JobStatus:
        url = self._config.url(STATUS_PATH)
        params = {"taskId": job.task_id}
        response = await self._http.fetch("GET", url, params=params, headers=self._config.bearer(), check=self._check)
        return to_status(self._data(response))

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Read the task id of a delivery. APIXO signs nothing, so the service confirms it with status()."""
        data = as_dict(callback_json(body, self.spec).get("data"))
        return CallbackUpdate(
            task_id=callback_task_id(data, ("taskId", "task_id"), self.spec, "data.taskId"), status=None
        )

    def _check(self, response: httpx.Response) -> None:
        """APIXO clients check the HTTP status and the envelope's code == 200 [doc]."""
        body = self._http.json(response)
        code = body.get("code", 200)
        status = int(code) if isinstance(code, (int, str)) and str(code).isdigit() else 500
        if status != 200:
            raise error_for_status(
                self.spec.label, status, error_detail(body), provider=self.spec.name, key_env=self._config.key_env
            )

    def _data(self, response: httpx.Response) -> dict[str, Any]:
        data = self._http.json(response).get("data")
        if not isinstance(data, dict):
            raise UnexpectedResponseError(f"{self.spec.label} answered without a data object.", provider=self.spec.name)
        return data


def to_payload(
    request: GenerationRequest, mode: str, image_url: str | None, callback_url: str | None
) -> dict[str, Any]:
    """The generateTask body; ``mode`` is APIXO's name for the model (pro, max).

    Inside ``input`` the casing is mixed on purpose, as documented: snake_case aspect_ratio/output_format/
    image_urls, camelCase safetyTolerance/promptUpsampling/enableTranslation [https://apixo.ai/docs/pl/models/image/flux-kontext][doc].

    ``provider`` (auto|value|official) is not sent: the default "auto" (cheapest route first, with
    fail-over to the official one) applies, or whatever the key's dashboard setting says.
    """
    return compact(
        {
            "request_type": "callback" if callback_url else "async",
            "callback_url": callback_url,
            "input": _input(request, mode, image_url),
        }
    )


def _input(request: GenerationRequest, mode: str, image_url: str | None) -> dict[str, Any]:
    return compact(
        {
            "mode": mode,
            "prompt": request.prompt,
            "aspect_ratio": request.aspect_ratio,
            # UNCERTAIN [doc]: an older page took ``image_url`` (a string); the current pages and
            # APIXO docs take ``image_urls``, an array of at most one URL. We send the array.
            "image_urls": [image_url] if image_url else None,
            "output_format": request.output_format,
            "safetyTolerance": request.safety_tolerance,
            "promptUpsampling": request.prompt_upsampling,
            "enableTranslation": request.enable_translation,
        }
    )


def to_status(data: dict[str, Any]) -> JobStatus:
    """Normalise a statusTask ``data`` object, with APIXO's own timings (milliseconds) [doc: timings]."""
    return with_timings(
        _state(data),
        total=span_s(data.get("createTime"), data.get("completeTime")),
        generating=number(data.get("costTime"), 0.001),
    )


def _state(data: dict[str, Any]) -> JobStatus:
    """Normalise a statusTask ``data`` object; a state not documented counts as running, marked ``unknown``."""
    raw_state = data.get("state")
    state = _STATES.get(raw_state.strip().lower()) if isinstance(raw_state, str) else None
    if state is None:
        return JobStatus(state="running", unknown=str(raw_state), raw=data)
    if state == "succeeded":
        return JobStatus(state="succeeded", image_urls=result_urls(data), raw=data)
    if state == "failed":
        code = first_str(data.get("failCode"))
        return JobStatus(
            state="failed",
            error=first_str(data.get("failMsg"), code) or "generation failed",
            error_code=code,
            moderated=code in MODERATION_CODES,
            raw=data,
        )
    return JobStatus(state=state, raw=data)


def result_urls(data: dict[str, Any]) -> tuple[str, ...]:
    """The URLs in ``resultJson``: documented as a JSON string; an object is tolerated too."""
    result = data.get("resultJson")
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return ()
    urls = result.get("resultUrls") if isinstance(result, dict) else data.get("resultUrls")
    return tuple(u for u in urls if isinstance(u, str) and u) if isinstance(urls, list) else ()


def error_detail(body: Mapping[str, Any]) -> str | None:
    """'Invalid request: Missing required field: input.prompt' from {code, message, data: {error}}."""
    data = body.get("data")
    specific = first_str(data.get("error")) if isinstance(data, dict) else None
    general = first_str(body.get("message"), body.get("msg"))
    if specific and general and specific != general:
        return f"{general}: {specific}"
    return specific or general


# APIXO documents one rule for both modes and for edits: safetyTolerance 0 (strict) to 2 (balanced).
_CAPS = Capabilities(
    text_to_image=True,
    edit=True,
    aspect_ratios=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
    safety_range=(0, 2),
    safety_range_edit=(0, 2),
    seed=False,
    guidance=False,
    translation=True,
    callbacks=True,
    upload=False,
    inline_image=False,
)

# APIXO advises "wait 20 s, then poll every 3 s" [doc] (an older page: 8 s). This is a latency
# comparison tool: a 20 s blind first wait would add up to 17 s of error to a fast job's measured
# time, and the documented limit of 10000 requests/min leaves ample room for reads every 3 s.
_POLL = PollSchedule(first_s=3.0, interval_s=3.0)
_PRICE_SOURCE = "https://apixo.ai/docs/models/image/flux-kontext"

SPEC: ProviderSpec = ProviderSpec(
    name="apixo",
    label="APIXO",
    key_env="APIXO_API_KEY",
    base_url_env="APIXO_BASE_URL",
    default_base_url="https://api.apixo.ai",
    factory=lambda config, http: ApixoProvider(SPEC, config, http),
    capabilities=_CAPS,
    poll=_POLL,
    models=MODES,
    sandbox="apixo",
    prices={
        "flux-kontext-pro": Price(usd=0.03, source=_PRICE_SOURCE),
        "flux-kontext-max": Price(usd=0.06, source=_PRICE_SOURCE),
    },
    extra_env={},  # no extra host, and callbacks are unsigned: no secret to configure
    docs_url="https://apixo.ai/docs/models/image/flux-kontext",
    max_reads_per_minute=10000,  # 10000 requests/minute [doc: errors]
    key_url="https://apixo.ai/docs/concepts/authentication",  # keys are made in the dashboard it describes
)
