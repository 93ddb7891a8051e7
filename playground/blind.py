"""Blind copies of a round's images: the same size, the same format, and nothing that names the host.

A host can give itself away in the file, not only in the pixels: EXIF (Software, Make, maker notes), PNG text
chunks, XMP, a JPEG comment, an ICC profile of its own, the format (JPEG or PNG), the byte size, the
dimensions. A copy is therefore rebuilt from decoded pixels: orientation applied, colours converted to sRGB
when the file carried a profile, every copy fitted to one common size (never enlarged), written as PNG
(lossless, so no host loses quality it had) with no metadata chunk at all.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageCms, ImageOps

RESAMPLING = Image.Resampling.LANCZOS
_SRGB = ImageCms.createProfile("sRGB")


def blind_copies(originals: Sequence[bytes]) -> list[bytes]:
    """PNG copies of ``originals``, all of one size: the smallest width by the smallest height, so no image is
    enlarged; one whose shape differs is scaled down and centre-cropped to it."""
    images = [_pixels(content) for content in originals]
    size = (min(img.width for img in images), min(img.height for img in images))
    return [_png(img if img.size == size else ImageOps.fit(img, size, RESAMPLING)) for img in images]


def _pixels(content: bytes) -> Image.Image:
    """The decoded picture as RGB in sRGB, upright, in a fresh image that carries no ``info`` from the file."""
    with Image.open(io.BytesIO(content)) as opened:
        upright = ImageOps.exif_transpose(opened)
        profile = opened.info.get("icc_profile")
        rgb = _flattened(upright)
        if profile:
            rgb = _to_srgb(rgb, profile)
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def _flattened(img: Image.Image) -> Image.Image:
    """RGB; transparency is composited over white, the same for every host."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _to_srgb(img: Image.Image, profile: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(img, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError):
        return img  # an unreadable profile: keep the pixels as they are
    return converted if converted is not None else img


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=3)  # no pnginfo, exif, icc_profile or dpi: IHDR, IDAT, IEND only
    return out.getvalue()


def png_chunks(content: bytes) -> list[str]:
    """The chunk types of a PNG file, in order (to check that a copy carries nothing but pixels)."""
    if content[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    chunks, at = [], 8
    while at + 8 <= len(content):
        length = int.from_bytes(content[at : at + 4], "big")
        chunks.append(content[at + 4 : at + 8].decode("latin-1"))
        at += 12 + length
    return chunks
