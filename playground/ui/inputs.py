"""The Edit tab's input for a run: the checked image, and a local copy of it for the before/after views."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
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
    service: GenerationService,
    form: forms.Form,
    *,
    required: bool,
    trusted: bool = False,
    uploads: Sequence[Path] = (),
) -> tuple[InputImage | None, str | None]:
    """The checked input image, and a local file of it for the before/after slider (None if none could be had).

    An input URL is fetched once here: the slider shows it, and its size lets 'match the input' choose each
    provider's ratio. An upload must lie under one of ``uploads``; only a ``trusted`` visitor's URL may be private.
    """
    image = forms.load_image(form, required=required, uploads=uploads)
    if image is None or image.is_local:
        return image, form.image_path
    fetched = await _local_copy(service, image.url or "", trusted=trusted)
    if fetched is None:
        return image, None
    path, width, height = fetched
    return image.model_copy(update={"width": width, "height": height}), path


async def _local_copy(
    service: GenerationService, url: str, *, trusted: bool
) -> tuple[str, int | None, int | None] | None:
    """A local copy of an input URL and its size; None (the run goes on) when it cannot be read from here.

    Only a trusted visitor's URL may be private: in sandbox mode, with PLAYGROUND_ALLOW_PRIVATE_URLS=1, or with a
    provider stand-in on this machine.
    """
    settings = service.settings
    local_setup = settings.allow_private_urls or settings.sandbox or any(map(service.is_local, service.specs.values()))
    allow_private = trusted and local_setup
    client = service.client if allow_private else service.public_client
    try:
        fetched = await fetch_user_image(client, url, allow_private=allow_private)
    except (PlaygroundError, httpx.HTTPError) as exc:  # fetch_user_image lets connection errors through
        log.debug("no before image for the slider: %s", exc)
        return None
    assert fetched.content is not None and fetched.mime_type is not None
    name = hashlib.sha256(fetched.content).hexdigest()[:20] + "." + EXTENSIONS[fetched.mime_type]
    path = Path(settings.out_dir) / "inputs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fetched.content)
    return str(path), fetched.width, fetched.height
