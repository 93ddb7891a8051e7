"""Provider-neutral values that cross layers: request, capabilities, job, status, events."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


@dataclass(frozen=True)
class ModelInfo:
    """A model the playground knows: its id (as requests name it), its name for people, a short word."""

    id: str
    name: str
    short: str


# One line per model. A provider serves a model by naming it in its spec's ``models`` table.
MODEL_INFO: tuple[ModelInfo, ...] = (
    ModelInfo("flux-kontext-pro", "FLUX.1 Kontext [pro]", "pro"),
    ModelInfo("flux-kontext-max", "FLUX.1 Kontext [max]", "max"),
)
MODELS: tuple[str, ...] = tuple(info.id for info in MODEL_INFO)


def model_info(model: str) -> ModelInfo:
    """The entry for ``model``; ValueError naming the known ids when there is none."""
    for info in MODEL_INFO:
        if info.id == model:
            return info
    raise ValueError(f"unknown model {model!r}; the playground knows {', '.join(MODELS)}")


def _known_model(value: str) -> str:
    model_info(value)
    return value


ModelId = Annotated[str, AfterValidator(_known_model)]
"""A model id from MODEL_INFO; validated wherever a pydantic model holds one."""
OutputFormat = Literal["jpeg", "png"]
JobState = Literal["queued", "running", "succeeded", "failed", "canceled", "stopped"]
"""A job's life: queued -> running -> succeeded | failed | canceled; or stopped, when we stopped waiting
(the visitor pressed Stop or left) before the provider said it was done: such a job can be resumed."""
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "canceled", "stopped"})

# Every ratio any provider documents (docs/providers.md, Aspect ratios); each provider narrows it.
ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
_RATIO = re.compile(r"^\d{1,2}:\d{1,2}$")
MAX_PROMPT_CHARS = 10_000


class InputImage(BaseModel):
    """The image to edit: a public URL, or the checked bytes of a local file."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None
    content: bytes | None = Field(default=None, repr=False)
    mime_type: str | None = None
    filename: str = "input.png"
    width: int | None = None
    height: int | None = None

    @property
    def is_local(self) -> bool:
        return self.content is not None

    def describe(self) -> str:
        return self.url or f"local file {self.filename}"


class GenerationRequest(BaseModel):
    """One generation or edit, as the user asked for it; the same for every provider."""

    model_config = ConfigDict(frozen=True)

    prompt: str = Field(max_length=MAX_PROMPT_CHARS)
    model: ModelId = "flux-kontext-pro"
    image: InputImage | None = None
    aspect_ratio: str | None = None
    output_format: OutputFormat = "jpeg"
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    safety_tolerance: int | None = Field(default=None, ge=0, le=6)
    prompt_upsampling: bool = False
    enable_translation: bool | None = None
    guidance: float | None = Field(default=None, ge=1.0, le=20.0)
    match_input_ratio: bool = False
    """An edit without an aspect ratio: send each provider the supported ratio nearest the input's shape."""

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty: describe the image or the edit you want")
        return value.strip()

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio_shape(cls, value: str | None) -> str | None:
        if value is not None and not _RATIO.match(value):
            raise ValueError(f"aspect ratio {value!r} is not of the form W:H, like 16:9")
        return value

    @property
    def is_edit(self) -> bool:
        return self.image is not None

    def with_model(self, model: ModelId) -> GenerationRequest:
        return self.model_copy(update={"model": model})


class Price(BaseModel):
    """A per-image price and where it comes from, in words a person can follow (a URL, or "set by you").

    ``confirmed`` is False for a price the provider does not publish itself (another source's figure).
    """

    model_config = ConfigDict(frozen=True)

    usd: float
    source: str
    confirmed: bool = True


class Capabilities(BaseModel):
    """What one provider accepts; checked before anything is sent. (The models it serves are in its spec.)"""

    model_config = ConfigDict(frozen=True)

    text_to_image: bool = True
    edit: bool = True
    aspect_ratios: tuple[str, ...] = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
    output_formats: tuple[OutputFormat, ...] = ("jpeg", "png")
    safety_range: tuple[int, int] = (0, 6)
    safety_range_edit: tuple[int, int] = (0, 6)
    seed: bool = False
    guidance: bool = False
    prompt_upsampling: bool = True
    translation: bool = False
    callbacks: bool = False
    upload: bool = False
    inline_image: bool = False

    def summary(self) -> list[str]:
        """Short words for a table or a label: what this provider can do."""
        words = [w for w, ok in (("text-to-image", self.text_to_image), ("edit", self.edit)) if ok]
        extras = (
            ("seed", self.seed),
            ("guidance", self.guidance),
            ("translation", self.translation),
            ("callbacks", self.callbacks),
            ("local files by upload API", self.upload),
            ("local files inline", self.inline_image and not self.upload),
        )
        return words + [w for w, ok in extras if ok]


class WireRequest(BaseModel):
    """The exact request that created a job, with the key redacted and inline images shortened."""

    model_config = ConfigDict(frozen=True)

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None


class JobRef(BaseModel):
    """Enough to find a job again: provider, model, task id, and any URLs the provider returned."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: ModelId
    task_id: str
    urls: dict[str, str] = Field(default_factory=dict)
    submitted_at: datetime | None = None
    """When the job was first submitted (aware UTC), if known: a resumed job's latency counts from here."""


class Submission(BaseModel):
    """What submit() returns: the job, what was sent to create it, and its cost if the answer bills one."""

    model_config = ConfigDict(frozen=True)

    job: JobRef
    sent: WireRequest
    billed_usd: float | None = None


class JobStatus(BaseModel):
    """One status read, normalised from the provider's vocabulary.

    ``unknown`` is the provider's own status word when it is not in the provider's documented list: the
    job then counts as still running, and the watcher says so (and gives up after a few such reads).
    """

    model_config = ConfigDict(frozen=True)

    state: JobState
    image_urls: tuple[str, ...] = ()
    error: str | None = None
    error_code: str | None = None
    moderated: bool = False
    unknown: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    """Times the provider reports itself, in seconds (``total``, ``queued``, ``generating``)."""
    billed_usd: float | None = None
    """What the provider says this job cost, when its answer carries a price."""
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


Detection = Literal["poll", "callback"]


class JobResult(BaseModel):
    """A finished image: saved bytes, where it came from, how long, how much, what was sent.

    Latency is measured the same way for every provider: from the moment the create request was sent to
    the moment the playground saw the job done. ``latency_s`` is that moment; ``latency_low_s`` is the last
    read that still said "not done", so the job really finished between the two (the error bar). With a
    callback the delivery's arrival is the end. ``breakdown`` splits the time (upload, submit, queued,
    generating, download; seconds); ``provider_timings`` are the provider's own figures, labelled as such.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    image_url: str
    mime_type: str
    width: int
    height: int
    size_bytes: int
    latency_s: float
    cost_usd: float | None
    cost_source: str | None
    sent: WireRequest
    stored: str | None = None  # where the storage keeps the original (s3://...), when not at ``path`` itself
    latency_low_s: float | None = None
    detected_via: Detection = "poll"
    breakdown: dict[str, float] = Field(default_factory=dict)
    provider_timings: dict[str, float] = Field(default_factory=dict)
    cost_billed: bool = False
    cost_confirmed: bool = True

    @property
    def latency_error_s(self) -> float | None:
        """The width of the interval the job finished in (None when it was not measured)."""
        return None if self.latency_low_s is None else max(0.0, self.latency_s - self.latency_low_s)


class JobEvent(BaseModel):
    """One change in one job's life, as streamed to the CLI and the UI."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    provider: str
    provider_label: str
    model: ModelId
    state: JobState
    elapsed_s: float
    task_id: str | None = None
    urls: dict[str, str] = Field(default_factory=dict)
    message: str = ""
    notes: tuple[str, ...] = ()
    sent: WireRequest | None = None
    result: JobResult | None = None
    error: str | None = None
    code: str | None = None
    kind: str | None = None
    resumed: bool = False
    """The job was waited for again by task id (after a stop, a timeout or a restart); its elapsed time still
    counts from the original submit when that is known."""

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


Events = AsyncGenerator[JobEvent, None]
"""A stream of job events, as the service yields them; closing it (``aclose``) stops the jobs still waiting."""
