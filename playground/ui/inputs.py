"""The Edit tab's input for a run: the checked image, and a local copy of it for the before/after views."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import httpx

from playground.errors import PlaygroundError
from playground.fetch import fetch_user_image
from playground.images import EXTENSIONS
from playground.models import InputImage
from playground.service import GenerationService
from playground.ui import forms

log = logging.getLogger(__name__)


async def input_image(
    service: GenerationService, form: forms.Form, *, required: bool
) -> tuple[InputImage | None, str | None]:
    """The checked input image, and a local file of it for the before/after slider (None if none could be had).

    An input URL is fetched once here: the slider shows it, and its size lets 'match the input' choose each
    provider's ratio.
    """
    image = forms.load_image(form, required=required)
    if image is None or image.is_local:
        return image, form.image_path
    fetched = await _local_copy(service, image.url or "")
    if fetched is None:
        return image, None
    path, width, height = fetched
    return image.model_copy(update={"width": width, "height": height}), path


async def _local_copy(service: GenerationService, url: str) -> tuple[str, int | None, int | None] | None:
    """A local copy of an input URL and its size; None (the run goes on) when it cannot be read from here."""
    settings = service.settings
    try:
        fetched = await fetch_user_image(
            service.client, url, allow_private=settings.allow_private_urls or settings.sandbox
        )
    except (PlaygroundError, httpx.HTTPError) as exc:  # fetch_user_image lets connection errors through
        log.debug("no before image for the slider: %s", exc)
        return None
    assert fetched.content is not None and fetched.mime_type is not None
    name = hashlib.sha256(fetched.content).hexdigest()[:20] + "." + EXTENSIONS[fetched.mime_type]
    path = Path(settings.out_dir) / "inputs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fetched.content)
    return str(path), fetched.width, fetched.height
