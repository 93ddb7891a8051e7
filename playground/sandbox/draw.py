"""Images the sandbox 'generates': drawn locally with Pillow, so a person can tell prompts and edits apart.

Each provider draws its own grain (seeded by provider, model and prompt), so two hosts never return the same
bytes; a provider's *bias* (SANDBOX_BIAS) makes its grain coarser (below 0) or finer (above 0), a quality
difference that the arena's voters can see and the leaderboard should find. The host is not written on the
picture (that would break the arena's blind rounds): like many real hosts, it goes into the file's metadata
(EXIF Software, and a PNG text chunk or a JPEG comment), which the arena strips from the copies it shows.
"""

from __future__ import annotations

import hashlib
import io
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from PIL.PngImagePlugin import PngInfo

LONG_SIDE_PX = 768
GRAIN = 8.0  # standard deviation of the grain at bias 0, in 8-bit levels; bias -1 doubles it, +1 removes it
CAPTION_LINE_PX = 14
EXIF_SOFTWARE = 0x0131


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
    bias: float = 0.0,
) -> bytes:
    """Draw the result of a job: a gradient (text-to-image) or a visibly edited input image, with its grain."""
    src = _open(source)
    size = size_for(aspect_ratio, src, long_side)
    base = _edited(src, size) if src is not None else _gradient(prompt, size)
    base = grained(base, grain_sd(bias), seed=f"{label}|{model}|{prompt}")
    _caption(base, prompt, edited=src is not None)
    return _encode(base, fmt, f"{label} {model} (sandbox)")


def grain_sd(bias: float) -> float:
    """The grain's standard deviation for a bias in [-1, 1] (clipped): coarser for a worse provider."""
    return GRAIN * (1.0 - max(-1.0, min(1.0, bias)))


def grained(img: Image.Image, sd: float, *, seed: str) -> Image.Image:
    """``img`` with Gaussian grain of standard deviation ``sd`` (the same seed gives the same grain)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    if sd <= 0:
        return img.convert("RGB")
    pixels = np.asarray(img.convert("RGB"))
    noisy = rng.standard_normal(pixels.shape, dtype=np.float32)
    noisy *= np.float32(sd)  # in place: a third less time than fresh arrays, the same values to the bit
    noisy += pixels
    np.clip(noisy, 0, 255, out=noisy)
    return Image.fromarray(np.rint(noisy, out=noisy).astype(np.uint8), "RGB")


def _encode(img: Image.Image, fmt: str, source: str) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[EXIF_SOFTWARE] = source
    if fmt == "png":
        text = PngInfo()
        text.add_text("Source", source)
        img.save(out, format="PNG", pnginfo=text, exif=exif, compress_level=1)  # grain hardly compresses
    else:
        img.save(out, format="JPEG", quality=90, exif=exif, comment=source.encode())
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


def caption_height(lines: int) -> int:
    """Pixels the caption band takes at the top of an image with this many lines."""
    return CAPTION_LINE_PX * lines + 12


def _caption(img: Image.Image, prompt: str, *, edited: bool) -> None:
    draw = ImageDraw.Draw(img)
    lines = [("edit: " if edited else "") + "sandbox image", *textwrap.wrap(prompt, 48)[:4]]
    draw.rectangle((0, 0, img.width, caption_height(len(lines))), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((8, 6 + CAPTION_LINE_PX * i), line, fill=(255, 255, 255))
