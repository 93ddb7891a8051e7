"""Checking images: inputs before they are sent, results before they are kept."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from playground.errors import InvalidInputError
from playground.models import InputImage

MAX_INPUT_BYTES = 10 * 1024 * 1024  # our own cap, from APIXO's documented limit [docs/providers.md, Common rules]
INPUT_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
RESULT_FORMATS = {**INPUT_FORMATS, "GIF": "image/gif"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


def sniff(content: bytes) -> tuple[str, int, int] | None:
    """(Pillow format, width, height) if ``content`` decodes as an image, else None."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.verify()
        with Image.open(io.BytesIO(content)) as img:
            return str(img.format), img.width, img.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def load_input_image(source: str) -> InputImage:
    """An input image from a URL (passed through) or a local path (checked: format, decodes, size)."""
    if source.startswith(("http://", "https://")):
        return InputImage(url=source)
    if "://" in source:
        raise InvalidInputError(f"The image {source!r} is neither an http(s) URL nor a local file.")
    path = Path(source).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"The image file {source} does not exist.")
    return image_from_bytes(path.read_bytes(), path.name)


def image_from_bytes(content: bytes, filename: str) -> InputImage:
    """An input image from bytes, or InvalidInputError saying what is wrong with them."""
    if len(content) > MAX_INPUT_BYTES:
        size_mb = len(content) / 1024 / 1024
        raise InvalidInputError(f"The image {filename} is {size_mb:.1f} MB; providers take at most 10 MB.")
    found = sniff(content)
    if found is None:
        raise InvalidInputError(f"The file {filename} is not a readable image; use a JPEG, PNG or WebP file.")
    if found[0] not in INPUT_FORMATS:
        raise InvalidInputError(f"The file {filename} is a {found[0]} image; use a JPEG, PNG or WebP file.")
    fmt, width, height = found
    return InputImage(content=content, mime_type=INPUT_FORMATS[fmt], filename=filename, width=width, height=height)
