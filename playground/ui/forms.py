"""From form values to engine values: the request, the targets, the visitor's keys, the preview.

No gradio here. Errors are PlaygroundErrors whose text the page shows as is.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from playground.capabilities import check_request
from playground.errors import InvalidInputError, PlaygroundError
from playground.images import input_from_upload, input_from_url
from playground.models import MODELS, GenerationRequest, InputImage, Price
from playground.providers import ProviderSpec
from playground.request import build_request
from playground.ui.board import PanelKey
from playground.ui.format import BLOCKED, INFO, WARNING, estimate_text, job_name
from playground.ui.uploads import UploadProblem, check_upload

# The one table that wires a tab's inputs: the layout builds a component for each name, the handlers read
# the values by these names. Adding a control: a Form field, its name here, its component in the layout.
TEXT_FIELDS = (
    "prompt",
    "providers",
    "models",
    "aspect_ratio",
    "output_format",
    "seed",
    "same_seed",
    "randomize",
    "safety",
    "upsampling",
    "translation",
    "guidance",
)
FORM_FIELDS: dict[str, tuple[str, ...]] = {"text": TEXT_FIELDS, "edit": (*TEXT_FIELDS, "image_path", "image_url")}
STATE_FIELDS = ("keys", "owner")  # what the browser keeps: the visitor's keys and their opaque owner id

KEYS_VERSION = 1
RANDOM_SEED_LIMIT = 2**31  # the range every provider with a seed documents
DEFAULT_SAFETY = "default"
PREVIEW_PROMPT = "preview"  # stands in for an empty prompt when only the controls are checked


@dataclass(frozen=True)
class Form:
    """The values of one tab's controls, as the page sends them."""

    prompt: str
    providers: Sequence[str]
    models: Sequence[str]
    aspect_ratio: str | None
    output_format: str
    seed: str | float | None
    same_seed: bool
    randomize: bool
    safety: str | None
    upsampling: bool
    translation: str
    guidance: str | float | None
    image_path: str | None = None
    image_url: str | None = None

    @classmethod
    def named(cls, values: Mapping[str, Any]) -> Form:
        """A Form from values by field name (FORM_FIELDS); names that are not form fields are ignored."""
        fields = set(FORM_FIELDS["edit"])
        return cls(**{name: value for name, value in values.items() if name in fields})

    @property
    def image_source(self) -> str | None:
        """The upload if there is one, else the URL (stripped), else None."""
        return self.image_path or (self.image_url or "").strip() or None

    def next_seed(self) -> int | None:
        """The seed for this run: a fresh random one when randomize is on, else the seed box."""
        return secrets.randbelow(RANDOM_SEED_LIMIT) if self.randomize else self.typed_seed()

    def typed_seed(self) -> int | None:
        """The seed box as a number (empty: None); InvalidInputError when it is not a whole number."""
        value = _number(self.seed, "seed")
        if value is not None and not value.is_integer():
            raise InvalidInputError(f"The seed must be a whole number, not {value:g}.")
        return None if value is None else int(value)


def _number(typed: str | float | None, name: str) -> float | None:
    """A number typed into a text box (empty: None); InvalidInputError naming the box otherwise."""
    text = "" if typed is None else str(typed).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"The {name} must be a number, not {text[:20]!r}.") from None


def named_inputs(kind: str, values: Sequence[Any]) -> dict[str, Any]:
    """A tab's input values by name, in the order of FORM_FIELDS[kind] then STATE_FIELDS."""
    return dict(zip((*FORM_FIELDS[kind], *STATE_FIELDS), values, strict=True))


def build(form: Form, seed: int | None, image: InputImage | None, *, prompt: str | None = None) -> GenerationRequest:
    """The request the form describes, or InvalidInputError with one sentence.

    An edit whose ratio is left at 'match the input' asks each provider for its ratio nearest the input's shape.
    """
    safety = None if form.safety in (None, "", DEFAULT_SAFETY) else _number(form.safety, "safety tolerance")
    return build_request(
        form.prompt if prompt is None else prompt,
        image=image,
        aspect_ratio=form.aspect_ratio or None,
        output_format=form.output_format,
        seed=seed,
        safety_tolerance=None if safety is None else int(safety),
        prompt_upsampling=bool(form.upsampling),
        enable_translation={"on": True, "off": False}.get(form.translation),
        guidance=_number(form.guidance, "guidance"),
        match_input_ratio=not form.aspect_ratio,
    )


def load_image(form: Form, *, required: bool, uploads: Sequence[Path] = ()) -> InputImage | None:
    """The checked input image (upload or URL); InvalidInputError when it is missing or unreadable.

    An upload must lie under one of ``uploads`` (the page's upload folders) and is checked by its bytes first, so
    a bad file gets its sentence; the URL box takes http(s) only.
    """
    if form.image_path:
        image = input_from_upload(form.image_path, uploads)
        try:
            check_upload(form.image_path)
        except UploadProblem as problem:
            raise InvalidInputError(str(problem)) from None
        return image
    if (form.image_url or "").strip():
        return input_from_url(form.image_url or "")
    if required:
        raise InvalidInputError("Add an input image: upload one, or paste an http(s) image URL.")
    return None


def placeholder_image(form: Form) -> InputImage | None:
    """An image that stands for the form's input in capability checks, without reading any file."""
    if form.image_path:
        return InputImage(content=b"", mime_type="image/png", filename="upload")
    url = (form.image_url or "").strip()
    return InputImage(url=url) if url else None


def targets(form: Form, specs: Mapping[str, ProviderSpec]) -> list[PanelKey]:
    """Every (provider, model) pair chosen, in page order; InvalidInputError when none is."""
    models = [m for m in MODELS if m in form.models]
    chosen = [name for name in specs if name in form.providers]
    if not chosen or not models:
        raise InvalidInputError("Choose at least one provider and one model.")
    return [(name, model) for name in chosen for model in models]


# --- the visitor's keys (kept encrypted in their browser) -----------------------------------------


def empty_keys() -> dict[str, Any]:
    """The stored value meaning 'no keys'. Never falsy: the browser does not save falsy values."""
    return {"v": KEYS_VERSION, "keys": {}}


def stored_keys(blob: object, specs: Mapping[str, ProviderSpec]) -> dict[str, str]:
    """Env name -> key for the known providers in a stored value; anything else is dropped."""
    known = {spec.key_env for spec in specs.values()}
    raw = blob.get("keys") if isinstance(blob, dict) else None
    if not isinstance(raw, dict):
        return {}
    pairs = ((env, value.strip()) for env, value in raw.items() if env in known and isinstance(value, str))
    return {env: value for env, value in pairs if value}


def visitor_keys(blob: object, specs: Mapping[str, ProviderSpec]) -> dict[str, SecretStr]:
    """The keys to pass to the service, by env name."""
    return {env: SecretStr(value) for env, value in stored_keys(blob, specs).items()}


MIN_KEY_CHARS = 8  # no provider's key is this short: a shorter one is a slip of the keyboard


def key_problem(spec: ProviderSpec, typed: str) -> str | None:
    """Why ``typed`` cannot be a key of ``spec`` (one sentence), or None when it could be.

    Every key is one word of at least MIN_KEY_CHARS; where the provider documents a shape, it must have it.
    """
    key = typed.strip()
    if any(ch.isspace() for ch in key):
        return f"That {spec.label} key has a space in it; paste the key alone."
    if len(key) < MIN_KEY_CHARS:
        return f"That {spec.label} key is {len(key)} character{'s' * (len(key) != 1)} long; paste the whole key."
    if spec.key_pattern and not re.fullmatch(spec.key_pattern, key):
        return f"That does not look like a {spec.label} key: {spec.key_shape}."
    return None


def merge_keys(blob: object, entered: Mapping[str, str | None], specs: Mapping[str, ProviderSpec]) -> dict[str, Any]:
    """The stored value with the newly typed keys added (blank boxes keep the saved key)."""
    keys = stored_keys(blob, specs)
    keys.update({env: value.strip() for env, value in entered.items() if value and value.strip()})
    return {"v": KEYS_VERSION, "keys": stored_keys({"keys": keys}, specs)}


# --- what the controls mean for each chosen provider, before the run -------------------------------


def preview_lines(
    form: Form,
    specs: Mapping[str, ProviderSpec],
    usable: Sequence[str],
    *,
    needs_image: bool,
    can_host: bool = False,
    price: Callable[[ProviderSpec, str], Price | None] | None = None,
) -> list[str]:
    """Markdown lines: values a provider cannot take, controls it ignores, missing keys, the cost.

    ``can_host``: the app serves local inputs at a public URL, so URL-only providers take uploads too.
    ``price``: one image's price as a run counts it (the service's: PLAYGROUND_PRICES, else the list price).
    """
    try:
        chosen = targets(form, specs)
        request = build(form, _preview_seed(form), placeholder_image(form), prompt=form.prompt or PREVIEW_PROMPT)
    except PlaygroundError as exc:
        return [f"{BLOCKED} {exc}"]
    if needs_image and request.image is None:
        request = request.model_copy(update={"image": InputImage(url="https://example.com/input.png")})
    lines: list[str] = []
    if not (form.prompt or "").strip():
        lines.append(f"{INFO} Write a prompt, then press **Generate** (or Enter).")
    if needs_image and not form.image_source:
        lines.append(f"{INFO} Add an input image: upload one, or paste an image URL.")
    for name, model in chosen:
        serving = [spec.label for spec in specs.values() if spec.serves(model)]
        lines += _target_lines(specs[name], request.with_model(model), name in usable, can_host, serving)
    priced = price or _list_price
    prices = [(job_name(specs[n].label, m), usd.usd if (usd := priced(specs[n], m)) else None) for n, m in chosen]
    return list(dict.fromkeys(lines)) + [estimate_text(prices)]


def _preview_seed(form: Form) -> int | None:
    return 0 if form.randomize else form.typed_seed()


def _target_lines(
    spec: ProviderSpec, request: GenerationRequest, is_usable: bool, can_host: bool, serving: Sequence[str]
) -> list[str]:
    if not is_usable:
        return [f"{WARNING} {spec.label} has no API key: enter yours under **Keys** ({spec.key_env})."]
    try:
        notes = check_request(spec, request, can_host=can_host, served_by=serving)
        return [f"{INFO} {note}" for note in notes]
    except PlaygroundError as exc:
        return [f"{BLOCKED} {exc}"]


def _list_price(spec: ProviderSpec, model: str) -> Price | None:
    return spec.prices.get(model)
