"""The provider seam: a spec (static facts), a config (base URL, key) and a small Protocol."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr

from playground.errors import UnexpectedResponseError, WebhookError
from playground.http import HttpClient
from playground.models import (
    Capabilities,
    GenerationRequest,
    InputImage,
    JobRef,
    JobStatus,
    ModelId,
    Price,
    Submission,
    WireRequest,
)

INLINE_PREVIEW_CHARS = 48


@dataclass(frozen=True)
class PollSchedule:
    """When to read a job's status: first after ``first_s``, then every ``interval_s``."""

    first_s: float
    interval_s: float


@dataclass(frozen=True)
class ProviderConfig:
    """Where and as whom to talk to one provider. The key never leaves this object unredacted."""

    name: str
    label: str
    base_url: str
    api_key: SecretStr | None
    key_env: str
    extra: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key()}"}

    def key(self) -> str:
        return self.api_key.get_secret_value() if self.api_key else ""

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def secret(self, name: str) -> str | None:
        """An extra secret (a callback signing secret, say) by its environment name."""
        value = self.secrets.get(name)
        return value.get_secret_value() if value else None


@dataclass(frozen=True)
class CallbackUpdate:
    """What one callback delivery says about one job, after its signature was checked.

    ``status`` is None when the provider signs nothing: the service then confirms with status()
    before trusting it. ``delivery_id`` lets the receiver drop duplicate deliveries.
    """

    task_id: str
    status: JobStatus | None
    delivery_id: str | None = None


class Provider(Protocol):
    """One hosted API that runs FLUX.1 Kontext jobs."""

    spec: ProviderSpec

    async def submit(self, request: GenerationRequest, *, callback_url: str | None = None) -> Submission:
        """Create the job (uploading a local input image first if the API needs it)."""
        ...

    async def status(self, job: JobRef) -> JobStatus:
        """Read the job's status once, normalised."""
        ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> CallbackUpdate:
        """Verify one callback delivery (as the provider documents) and read it; WebhookError if untrusted.

        ``headers`` has lower-case names; ``now`` is Unix seconds (for timestamp windows).
        """
        ...


ProviderFactory = Callable[[ProviderConfig, HttpClient], Provider]


class Adapter:
    """What every adapter holds: its spec, where and as whom to reach it, and the one HTTP client."""

    def __init__(self, spec: ProviderSpec, config: ProviderConfig, http: HttpClient) -> None:
        self.spec = spec
        self._config = config
        self._http = http

    def submitted(
        self,
        request: GenerationRequest,
        task_id: str | None,
        sent: WireRequest,
        *,
        id_name: str = "id",
        urls: Mapping[str, str] | None = None,
        billed_usd: float | None = None,
    ) -> Submission:
        """The Submission for a job the provider accepted; UnexpectedResponseError if its answer named no id."""
        if task_id is None:
            message = f"{self.spec.label} accepted the job but returned no {id_name}."
            raise UnexpectedResponseError(message, provider=self.spec.name)
        job = JobRef(provider=self.spec.name, model=request.model, task_id=task_id, urls=dict(urls or {}))
        return Submission(job=job, sent=sent, billed_usd=billed_usd)


@dataclass(frozen=True)
class ProviderSpec:
    """Everything the playground knows about a provider without talking to it, in one place.

    ``models``: each model it serves, with the name its API uses for it (a path, an id, a mode).
    ``extra_env``: its other environment variables (secondary hosts, signing secrets), with defaults.
    ``sandbox``: the module under ``playground.sandbox`` that speaks its protocol locally.
    ``key_url``: where a person creates a key. ``key_pattern`` (a regular expression a whole key matches) and
    ``key_shape`` (the same in words) only where the provider documents its keys' shape.
    ``callback_body_signed``: a verified callback vouches for its whole body, so its state can be trusted as
    delivered; otherwise (nothing signed, or only ids and times, as KIE) a delivery is a nudge confirmed by one
    status read. Nothing outside the registry lists providers: settings, the sandbox, the UI and the tests all read
    these entries.
    """

    name: str
    label: str
    key_env: str
    base_url_env: str
    default_base_url: str
    factory: ProviderFactory
    capabilities: Capabilities
    poll: PollSchedule
    models: Mapping[ModelId, str]
    sandbox: str
    prices: Mapping[ModelId, Price] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    docs_url: str = ""
    key_url: str = ""
    max_reads_per_minute: int | None = None
    """The documented request limit that status reads count against (None: none documented)."""
    callback_body_signed: bool = False
    key_pattern: str = ""
    key_shape: str = ""

    def serves(self, model: str) -> bool:
        return model in self.models

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment variable this provider reads: key, base URL, then its extras."""
        return (self.key_env, self.base_url_env, *self.extra_env)


def wire(
    method: str,
    url: str,
    config: ProviderConfig,
    body: dict[str, Any] | None,
    *,
    auth_header: str = "Authorization",
    auth_scheme: str = "Bearer ",
    params: Mapping[str, str] | None = None,
) -> WireRequest:
    """Describe a request as sent, with the key replaced by its variable name and inline data shortened."""
    if params:
        url = url + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    headers = {auth_header: f"{auth_scheme}${config.key_env}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return WireRequest(method=method, url=url, headers=headers, body=_shorten(body) if body else body)


def _shorten(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    if isinstance(value, str) and len(value) > 512 and not value.startswith("http"):
        return f"{value[:INLINE_PREVIEW_CHARS]}...<{len(value)} chars>"
    return value


def data_uri(image: InputImage) -> str:
    """A local image as a data: URI (for APIs that document inline images)."""
    assert image.content is not None
    return f"data:{image.mime_type};base64,{base64.b64encode(image.content).decode()}"


def compact(body: dict[str, Any]) -> dict[str, Any]:
    """Drop None values: send only what the user set or the provider requires."""
    return {k: v for k, v in body.items() if v is not None}


def first_str(*values: Any) -> str | None:
    """The first non-empty string among values."""
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (tolerant reading of optional fields)."""
    return value if isinstance(value, dict) else {}


def callback_json(body: bytes, spec: ProviderSpec) -> dict[str, Any]:
    """A callback's body as a JSON object, or WebhookError naming the provider."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise WebhookError(f"{spec.label} callback body is not a JSON object.", provider=spec.name)
    return payload


def moment_s(value: Any) -> float | None:
    """A timestamp as Unix seconds: ISO 8601 text (Z or an offset), or a number of seconds or milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) / 1000 if value > 1e11 else float(value)  # epoch milliseconds are > 1e11
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return moment_s(float(text))
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def span_s(start: Any, end: Any) -> float | None:
    """Seconds from ``start`` to ``end`` (timestamps as moment_s reads them), or None."""
    a, b = moment_s(start), moment_s(end)
    return round(b - a, 3) if a is not None and b is not None and b >= a else None


def number(value: Any, scale: float = 1.0) -> float | None:
    """A number (or numeric text) times ``scale``, or None."""
    if isinstance(value, bool):
        return None
    try:
        return round(float(value) * scale, 6) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def with_timings(status: JobStatus, **timings: float | None) -> JobStatus:
    """``status`` carrying the provider's own timings (seconds); unknown ones are left out."""
    known = {name: seconds for name, seconds in timings.items() if seconds is not None and seconds >= 0}
    return status.model_copy(update={"timings": known}) if known else status


CALLBACK_WINDOW_S = 300  # a signed delivery more than this far off our clock is not trusted (replays)


def callback_task_id(payload: Mapping[str, Any], keys: tuple[str, ...], spec: ProviderSpec, where: str) -> str:
    """The task id a callback body names under the first of ``keys`` that holds one; WebhookError if none."""
    task_id = first_str(*(payload.get(key) for key in keys))
    if task_id is None:
        raise WebhookError(f"{spec.label} callback has no {where}.", provider=spec.name)
    return task_id


def signed_headers(headers: Mapping[str, str], names: tuple[str, ...], *, label: str, provider: str) -> list[str]:
    """The values of the signature headers ``names`` (lower-case); WebhookError naming them if one is missing."""
    values = [headers.get(name, "") for name in names]
    if not all(values):
        shown = ", ".join(name.title() for name in names)
        raise WebhookError(f"{label} callback is missing one of its signature headers ({shown}).", provider=provider)
    return values


def check_window(timestamp: str, now: float, *, label: str, provider: str, window_s: float = CALLBACK_WINDOW_S) -> None:
    """WebhookError unless ``timestamp`` (Unix seconds) is within ``window_s`` of ``now``."""
    if not timestamp.isdigit():
        raise WebhookError(f"{label} callback timestamp {timestamp[:20]!r} is not Unix seconds.", provider=provider)
    if abs(now - int(timestamp)) > window_s:
        raise WebhookError(f"{label} callback timestamp is more than {window_s:g} s off.", provider=provider)
