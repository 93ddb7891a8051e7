"""Check a request against a provider's capabilities before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Sequence

from playground.errors import UnsupportedParameterError
from playground.models import Capabilities, GenerationRequest, model_info
from playground.providers.base import ProviderSpec


def check_request(
    spec: ProviderSpec,
    request: GenerationRequest,
    *,
    can_host: bool = False,
    served_by: Sequence[str] = (),
) -> tuple[str, ...]:
    """Raise UnsupportedParameterError for a value ``spec`` cannot take; return notes on ignored ones.

    ``can_host``: the playground can serve a local input at a public URL itself.
    ``served_by``: the labels of the providers that do serve the request's model (named in the refusal).
    """
    if not spec.serves(request.model):
        raise UnsupportedParameterError(_model_refusal(spec, request.model, served_by))
    for problem in _problems(spec.label, spec.capabilities, request, can_host):
        raise UnsupportedParameterError(problem)
    return _ignored(spec.label, spec.capabilities, request)


def _model_refusal(spec: ProviderSpec, model: str, served_by: Sequence[str]) -> str:
    name = model_info(model).name
    others = [label for label in served_by if label != spec.label]
    where = f"it is served by {', '.join(others)}" if others else "no provider here serves it"
    return f"{spec.label} does not serve {name}; {where}."


def needs_hosting(caps: Capabilities, request: GenerationRequest) -> bool:
    """Whether the request's input image is a local file this provider can take only as a URL."""
    image = request.image
    return image is not None and image.is_local and not (caps.upload or caps.inline_image)


def _problems(label: str, caps: Capabilities, request: GenerationRequest, can_host: bool) -> list[str]:
    problems: list[str] = []
    if not request.is_edit and not caps.text_to_image:
        problems.append(f"{label} only edits images: add an input image, or choose another provider.")
    if request.is_edit and not caps.edit:
        problems.append(f"{label} cannot edit images: remove the input image, or choose another provider.")
    if needs_hosting(caps, request) and not can_host:
        problems.append(
            f"{label} takes input images only as public URLs and has no upload API: pass an http(s):// URL "
            "instead of a local file, or set PUBLIC_BASE_URL and run the app so it can host the file."
        )
    if request.aspect_ratio and request.aspect_ratio not in caps.aspect_ratios:
        problems.append(
            f"{label} does not support aspect ratio {request.aspect_ratio}; it takes {', '.join(caps.aspect_ratios)}."
        )
    if request.output_format not in caps.output_formats:
        problems.append(f"{label} cannot return {request.output_format}; it returns {', '.join(caps.output_formats)}.")
    problems += _safety_problems(label, caps, request)
    return problems


def _safety_problems(label: str, caps: Capabilities, request: GenerationRequest) -> list[str]:
    value = request.safety_tolerance
    if value is None:
        return []
    low, high = caps.safety_range_edit if request.is_edit else caps.safety_range
    if low <= value <= high:
        return []
    mode = "edits" if request.is_edit else "text-to-image"
    return [f"{label} takes safety tolerance {low} to {high} for {mode}, not {value}."]


def _ignored(label: str, caps: Capabilities, request: GenerationRequest) -> tuple[str, ...]:
    notes = []
    if request.seed is not None and not caps.seed:
        notes.append(f"seed ignored by {label} (its API has no seed)")
    if request.guidance is not None and not caps.guidance:
        notes.append(f"guidance ignored by {label} (its API has no guidance)")
    if request.enable_translation is not None and not caps.translation:
        notes.append(f"translation ignored by {label} (its API does not translate prompts)")
    if request.prompt_upsampling and not caps.prompt_upsampling:
        notes.append(f"prompt upsampling ignored by {label}")
    return tuple(notes)


def nearest_ratio(width: int, height: int, ratios: Sequence[str]) -> str:
    """The ratio in ``ratios`` ('W:H') closest to width:height, compared on a log scale (2:1 and 1:2 are as far
    from 1:1); on a tie the first listed wins."""
    shape = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(x) for x in ratio.split(":"))
        return abs(math.log(w / h) - shape)

    return min(ratios, key=distance)


def match_input_ratio(spec: ProviderSpec, request: GenerationRequest) -> tuple[GenerationRequest, str | None]:
    """For an edit asked to match its input: the request with the ratio ``spec`` takes nearest the input's shape,
    and a note saying which (or why none could be chosen). Any other request comes back as it is."""
    image = request.image
    if not request.match_input_ratio or image is None or request.aspect_ratio is not None:
        return request, None
    if not image.width or not image.height:
        return request, f"the input's size is not known here, so {spec.label} uses its own default shape"
    ratio = nearest_ratio(image.width, image.height, spec.capabilities.aspect_ratios)
    size = f"{image.width}×{image.height}"
    w, h = (int(x) for x in ratio.split(":"))
    exact = image.width * h == image.height * w
    how = "the input's own ratio" if exact else f"the nearest {spec.label} takes to the input's {size}"
    return request.model_copy(update={"aspect_ratio": ratio}), f"aspect ratio {ratio} sent to {spec.label}: {how}"
