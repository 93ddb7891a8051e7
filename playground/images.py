"""Checking images: inputs before they are sent, results before they are kept.

Every check works from the bytes, and the limits hold while reading: a file is never read past its cap, and
an image's size in pixels is read from its header before anything decodes it (a decompression bomb, say a
20000x20000 PNG of a few kilobytes, is refused with a sentence).
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from playground.errors import InvalidInputError
from playground.models import InputImage

MAX_INPUT_BYTES = 10 * 1024 * 1024  # our own cap, from APIXO's documented limit [docs/providers.md, Common rules]
# Our own cap: no provider documents one. FLUX.1 Kontext works at about one megapixel; 50 MP still takes a
# full-resolution phone photo, and keeps a decoded input (3 bytes a pixel) under 150 MB.
MAX_INPUT_PIXELS = 50_000_000
MAX_RESULT_BYTES = 50 * 1024 * 1024  # a result larger than this is not kept (results are ~1-4 MP images)
MAX_RESULT_PIXELS = 100_000_000
INPUT_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
RESULT_FORMATS = {**INPUT_FORMATS, "GIF": "image/gif"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


class TooManyPixelsError(InvalidInputError):
    """An image whose header announces more pixels than the playground takes."""


def inspect(content: bytes, *, max_pixels: int) -> tuple[str, int, int] | None:
    """(Pillow format, width, height) if ``content`` is a readable image, else None.

    TooManyPixelsError when its header announces more than ``max_pixels``: nothing is decoded then.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as img:
                found = str(img.format), img.width, img.height
                if img.width * img.height > max_pixels:
                    raise TooManyPixelsError(f"{img.width}x{img.height}")
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixelsError("more than Pillow's limit") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return found


def sniff(content: bytes, *, max_pixels: int = MAX_RESULT_PIXELS) -> tuple[str, int, int] | None:
    """(Pillow format, width, height) if ``content`` decodes as an image within ``max_pixels``, else None."""
    try:
        return inspect(content, max_pixels=max_pixels)
    except TooManyPixelsError:
        return None


def load_input_image(source: str) -> InputImage:
    """The CLI's ``--image``: an http(s) URL (passed through) or a local file (checked: format, decodes, size)."""
    if source.startswith(("http://", "https://")):
        return InputImage(url=source)
    if "://" in source:
        raise InvalidInputError(f"The image {source!r} is neither an http(s) URL nor a local file.")
    path = Path(source).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"The image file {source} does not exist or is not a regular file.")
    return image_from_bytes(read_capped(path, MAX_INPUT_BYTES, name=path.name), path.name)


def input_from_url(text: str) -> InputImage:
    """What a visitor typed in the URL box: an http(s) URL, nothing else (local files come only by upload).

    Nothing is looked up here, so the sentence is the same whether or not such a file exists on the server.
    """
    url = text.strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > 2048:
        raise InvalidInputError(
            "The image URL box takes an http(s) URL only, like https://example.com/photo.jpg; "
            "to use a file, upload it instead."
        )
    return InputImage(url=url)


def input_from_upload(path: str, roots: Sequence[Path]) -> InputImage:
    """A file the page received by upload: it must lie under one of ``roots`` (the upload folders).

    The same sentence whether the path is elsewhere or missing: a visitor learns nothing about the disk.
    """
    resolved = Path(path).resolve()
    inside = any(resolved.is_relative_to(root.resolve()) for root in roots)
    if not inside or not resolved.is_file():
        raise InvalidInputError("The uploaded image is not one this page received; upload it again.")
    return image_from_bytes(read_capped(resolved, MAX_INPUT_BYTES, name=resolved.name), resolved.name)


def read_capped(path: Path, limit: int, *, name: str) -> bytes:
    """The bytes of a regular file, never reading more than ``limit`` + 1 of them; InvalidInputError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError:
        raise InvalidInputError(f"The image {name} could not be read.") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"The image {name} is not a regular file.")
        if info.st_size > limit:
            raise too_large(name, info.st_size)
        content = file.read(limit + 1)
    if len(content) > limit:  # it grew while we read
        raise too_large(name, len(content))
    return content


def too_large(name: str, size: int) -> InvalidInputError:
    return InvalidInputError(
        f"The image {name} is {size / 1024 / 1024:.1f} MB; providers take at most {MAX_INPUT_BYTES // 1024 // 1024} MB."
    )


def image_from_bytes(content: bytes, filename: str) -> InputImage:
    """An input image from bytes, or InvalidInputError saying what is wrong with them."""
    if len(content) > MAX_INPUT_BYTES:
        raise too_large(filename, len(content))
    try:
        found = inspect(content, max_pixels=MAX_INPUT_PIXELS)
    except TooManyPixelsError as exc:
        raise InvalidInputError(
            f"The image {filename} is too large in pixels ({exc}); the playground takes at most "
            f"{MAX_INPUT_PIXELS // 1_000_000} megapixels: scale it down first."
        ) from None
    if found is None:
        raise InvalidInputError(f"The file {filename} is not a readable image; use a JPEG, PNG or WebP file.")
    if found[0] not in INPUT_FORMATS:
        raise InvalidInputError(f"The file {filename} is a {found[0]} image; use a JPEG, PNG or WebP file.")
    fmt, width, height = found
    return InputImage(content=content, mime_type=INPUT_FORMATS[fmt], filename=filename, width=width, height=height)
