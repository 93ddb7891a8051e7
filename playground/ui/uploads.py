"""Checking an uploaded file by its bytes, not its name: one sentence for anything the providers would refuse.

No gradio here. The Edit tab runs this when a file is dropped in (so a bad file is refused at once, where the
visitor is looking) and again before a run, so nothing unreadable ever reaches a provider or a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from playground.images import INPUT_FORMATS, MAX_INPUT_BYTES
from playground.ui.format import size_text

MAX_INPUT_PIXELS = 50_000_000  # our own cap (8,000 x 6,000 fits): bigger files are slow to send and to check
TEXT_SAMPLE_BYTES = 512
WHAT_WORKS = "choose a JPEG, PNG or WebP image"


@dataclass(frozen=True)
class Upload:
    """A file that passed: what it is, in a few words."""

    name: str
    format: str
    width: int
    height: int
    size_bytes: int

    def describe(self) -> str:
        return f"{self.name}: {self.width}×{self.height} {self.format}, {size_text(self.size_bytes)}."


class UploadProblem(ValueError):
    """What is wrong with an uploaded file, as one sentence that says what would work."""


def check_upload(path: str | Path, name: str | None = None) -> Upload:
    """The upload at ``path`` if it is an image the providers take; UploadProblem otherwise."""
    file = Path(path)
    name = name or file.name
    size = file.stat().st_size if file.is_file() else -1
    if size < 0:
        raise UploadProblem(f"{name} could not be read here: upload it again, or {WHAT_WORKS}.")
    if size == 0:
        raise UploadProblem(f"{name} is empty (0 bytes): {WHAT_WORKS}.")
    if size > MAX_INPUT_BYTES:
        raise UploadProblem(f"{name} is {size_text(size)}; the providers take at most 10 MB: {WHAT_WORKS} under that.")
    fmt, width, height = _header(file, name)
    if fmt not in INPUT_FORMATS:
        raise UploadProblem(f"{name} is a {fmt} image, which not every provider takes: {WHAT_WORKS}.")
    if width * height > MAX_INPUT_PIXELS:
        raise UploadProblem(_too_big(name, width, height))
    _decode(file, name, fmt)
    return Upload(name, fmt, width, height, size)


def _header(file: Path, name: str) -> tuple[str, int, int]:
    """Format and size from the file's first bytes (nothing is decoded yet)."""
    try:
        with Image.open(file) as img:
            return str(img.format), img.width, img.height
    except Image.DecompressionBombError:
        width, height = _png_size(file) or (0, 0)
        raise UploadProblem(_too_big(name, width, height)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UploadProblem(_not_an_image(file, name)) from None


def _decode(file: Path, name: str, fmt: str) -> None:
    """Decode every pixel once: a file cut short fails here."""
    try:
        with Image.open(file) as img:
            img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise UploadProblem(
            f"{name} is a {fmt} file that is cut short or damaged (part of the picture is missing): "
            "save or download it again, then upload the new copy."
        ) from None


def _not_an_image(file: Path, name: str) -> str:
    with file.open("rb") as stream:
        head = stream.read(TEXT_SAMPLE_BYTES)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    suffix = Path(name).suffix
    if text is not None and all(ch.isprintable() or ch.isspace() for ch in text):
        named = f" (its name ends in {suffix}, but its contents are text)" if suffix else ""
        return f"{name} is a text file, not an image{named}: {WHAT_WORKS}."
    return f"{name} is not an image file (no provider could read a picture in it): {WHAT_WORKS}."


def _too_big(name: str, width: int, height: int) -> str:
    size = f" is {width}×{height} pixels ({width * height / 1e6:,.0f} megapixels)" if width and height else " is huge"
    return f"{name}{size}; the playground takes up to {MAX_INPUT_PIXELS // 1_000_000} megapixels: scale it down first."


def _png_size(file: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's header, read without decoding (for files too big to open)."""
    with file.open("rb") as stream:
        head = stream.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
