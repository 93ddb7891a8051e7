"""Images made from results for the page: what an edit changed, and small thumbnails. Pillow only; no gradio.

Both are plain (blocking) functions: callers run them off the event loop (``asyncio.to_thread``). Each
writes next to the run's results, under ``views/``, and is not made again when its file is already there.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

CHANGE_THRESHOLD = 40
"""A pixel counts as changed when one of its channels moved by more than this (of 255): enough to ignore
JPEG noise and resampling, small enough to catch any edit a person would see."""
COMPARE_LONG_SIDE_PX = 512  # both images are brought to the result's size, capped here: faster, and as fair
THUMB_LONG_SIDE_PX = 160  # a History row's thumbnails
TILE_LONG_SIDE_PX = 480  # a grid tile's picture (the compare view shows the original)
VIEWS_DIR = "views"
MAP_DIM = 0.35  # the unchanged picture, darkened, under the changed pixels in colour
MAP_COLOUR = (255, 40, 160)


@dataclass(frozen=True)
class Changes:
    """How much of an edit's result differs from its input, and a picture of where."""

    share: float
    """Fraction of the result's pixels that changed beyond CHANGE_THRESHOLD, 0 to 1."""
    map_path: Path


def views_dir(result: Path) -> Path:
    """Where the derived images of a result live: ``<run dir>/views``."""
    return result.parent / VIEWS_DIR


def changes(before: Path, after: Path, *, threshold: int = CHANGE_THRESHOLD) -> Changes | None:
    """Compare an edit's input with its result (both brought to one size); None if either cannot be read."""
    target = views_dir(after) / f"{after.stem}-changes.jpg"
    known = target.with_suffix(".share")  # the share, kept beside the map: a run opened again is not compared again
    if target.is_file() and known.is_file() and before.stat().st_mtime <= known.stat().st_mtime:
        try:
            return Changes(share=float(known.read_text()), map_path=target)
        except ValueError:
            pass
    try:
        with Image.open(before) as src, Image.open(after) as out:
            first, second = _same_size(src, out)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    moved = _moved(first, second)
    mask = moved.point(lambda v: 255 if v > threshold else 0)
    share = mask.histogram()[255] / (mask.width * mask.height)
    _save(_map(second, moved, mask), target, quality=85)
    _write_text(known, f"{share:.6f}")
    return Changes(share=share, map_path=target)


def _same_size(before: Image.Image, after: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Both as RGB at the result's size (its long side capped): the input is stretched to the result's shape."""
    out = after.convert("RGB")
    scale = min(1.0, COMPARE_LONG_SIDE_PX / max(out.size))
    size = (max(1, round(out.width * scale)), max(1, round(out.height * scale)))
    out = out.resize(size, Image.Resampling.BILINEAR) if out.size != size else out
    return before.convert("RGB").resize(size, Image.Resampling.BILINEAR), out


def _moved(first: Image.Image, second: Image.Image) -> Image.Image:
    """Per pixel, the largest change of any channel (an 'L' image)."""
    red, green, blue = ImageChops.difference(first, second).split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue)


def _map(after: Image.Image, moved: Image.Image, mask: Image.Image) -> Image.Image:
    """The result darkened in grey, with the changed pixels in one bright colour (stronger where it changed more)."""
    grey = ImageOps.grayscale(after).point(lambda v: int(v * MAP_DIM)).convert("RGB")
    strength = ImageChops.multiply(mask, ImageOps.autocontrast(moved))
    return Image.composite(Image.new("RGB", after.size, MAP_COLOUR), grey, strength)


def thumbnail(image: Path, *, long_side: int = THUMB_LONG_SIDE_PX) -> Path | None:
    """A small JPEG of ``image``, ``long_side`` pixels at most (made once); None if it cannot be read."""
    target = views_dir(image) / f"{image.stem}-{long_side}.jpg"
    if target.is_file():
        return target
    try:
        with Image.open(image) as img:
            img.draft("RGB", (long_side * 2, long_side * 2))  # JPEG: decode at a fraction of the size, fast
            small = ImageOps.contain(img.convert("RGB"), (long_side, long_side))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    _save(small, target, quality=80)
    return target


def _save(img: Image.Image, target: Path, **options: int) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = _part(target)
    img.save(tmp, format="JPEG", **options)
    os.replace(tmp, target)


def _write_text(target: Path, text: str) -> None:
    tmp = _part(target)
    tmp.write_text(text)
    os.replace(tmp, target)


def _part(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.part")
