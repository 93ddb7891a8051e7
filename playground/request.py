"""From plain fields to a checked GenerationRequest: the one builder the CLI and the UI both call."""

from __future__ import annotations

from pydantic import ValidationError as PydanticValidationError

from playground.errors import InvalidInputError
from playground.models import MODELS, GenerationRequest, InputImage


def build_request(
    prompt: str,
    *,
    model: str = MODELS[0],
    image: InputImage | None = None,
    aspect_ratio: str | None = None,
    output_format: str = "jpeg",
    seed: int | None = None,
    safety_tolerance: int | None = None,
    prompt_upsampling: bool = False,
    enable_translation: bool | None = None,
    guidance: float | None = None,
    match_input_ratio: bool = False,
) -> GenerationRequest:
    """The request these fields describe, or InvalidInputError with one sentence naming what is wrong.

    Blank optional fields (None, "") mean "not set": nothing is sent for them. ``match_input_ratio``: an edit
    with no ratio gets, per provider, the ratio it takes nearest the input's shape (see service.plan).
    """
    try:
        return GenerationRequest(
            prompt=prompt,
            model=model,
            image=image,
            aspect_ratio=aspect_ratio or None,
            output_format=output_format,  # validated by the model
            seed=seed,
            safety_tolerance=safety_tolerance,
            prompt_upsampling=prompt_upsampling,
            enable_translation=enable_translation,
            guidance=guidance,
            match_input_ratio=match_input_ratio and image is not None and not aspect_ratio,
        )
    except PydanticValidationError as exc:
        raise InvalidInputError(first_error(exc)) from None


RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def first_error(exc: PydanticValidationError) -> str:
    """The first validation problem as a sentence: 'The seed must be from 0 to 4294967295, not -5.', or
    'Invalid prompt: ...' where the model has no range to name."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "request"
    bounds = _bounds(field) if err["type"] in RANGE_ERRORS else None
    if bounds is not None:
        low, high = bounds
        typed = str(err["input"])
        if len(typed) > 20:  # a huge number reads better as 1e+99 than as a hundred digits
            typed = f"{float(err['input']):.3g}" if isinstance(err["input"], int | float) else typed[:20] + "…"
        return f"The {field.replace('_', ' ')} must be from {low} to {high}, not {typed}."
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"Invalid {field.replace('_', ' ')}: {message}."


def _bounds(field: str) -> tuple[object, object] | None:
    """The (lowest, highest) a GenerationRequest field takes, when the model declares both."""
    info = GenerationRequest.model_fields.get(field)
    found = {
        name: getattr(rule, name)
        for rule in (info.metadata if info else ())
        for name in ("ge", "le")
        if hasattr(rule, name)
    }
    return (found["ge"], found["le"]) if found.keys() == {"ge", "le"} else None
