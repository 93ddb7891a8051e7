"""Images the sandbox 'generates': drawn locally with Pillow, labelled so a person can tell them apart."""

from __future__ import annotations

import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFilter, ImageOps

LONG_SIDE_PX = 768


def size_for(aspect_ratio: str | None, source: Image.Image | None, long_side: int = LONG_SIDE_PX) -> tuple[int, int]:
    """Pixel size for a W:H ratio (long side 768), or the source's own ratio when none is asked."""
    if aspect_ratio:
        w, h = (int(x) for x in aspect_ratio.split(":"))
    elif source is not None:
        w, h = source.size
    else:
        w, h = 1, 1
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def render(
    label: str,
    model: str,
    prompt: str,
    aspect_ratio: str | None,
    fmt: str,
    source: bytes | None,
    *,
    long_side: int = LONG_SIDE_PX,
) -> bytes:
    """Draw the result of a job: a gradient (text-to-image) or a visibly edited input image."""
    src = _open(source)
    size = size_for(aspect_ratio, src, long_side)
    base = _edited(src, size) if src is not None else _gradient(prompt, size)
    _caption(base, label, model, prompt, edited=src is not None)
    out = io.BytesIO()
    base.convert("RGB").save(out, format="PNG" if fmt == "png" else "JPEG", quality=90)
    return out.getvalue()


def _open(source: bytes | None) -> Image.Image | None:
    if source is None:
        return None
    try:
        return Image.open(io.BytesIO(source)).convert("RGB")
    except OSError:
        return None


def _gradient(prompt: str, size: tuple[int, int]) -> Image.Image:
    digest = hashlib.sha256(prompt.encode()).digest()
    top, bottom = tuple(digest[0:3]), tuple(digest[3:6])
    img = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        img.putpixel((0, y), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return img.resize(size)


def _edited(src: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A visible, deterministic 'edit': fit to the size, mirror, posterize and warm the colours."""
    fitted = ImageOps.fit(src, size)
    edited = ImageOps.posterize(ImageOps.mirror(fitted), 3).filter(ImageFilter.SMOOTH)
    warm = Image.new("RGB", size, (255, 140, 40))
    return Image.blend(edited, warm, 0.25)


def _caption(img: Image.Image, label: str, model: str, prompt: str, *, edited: bool) -> None:
    draw = ImageDraw.Draw(img)
    lines = [f"{label} - {model}", ("edit: " if edited else "") + "sandbox image", *textwrap.wrap(prompt, 48)[:4]]
    height = 14 * len(lines) + 12
    draw.rectangle((0, 0, img.width, height), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((8, 6 + 14 * i), line, fill=(255, 255, 255))
