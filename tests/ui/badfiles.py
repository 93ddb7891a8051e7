"""The bad uploads the issue lists, made on the fly: a text file named .png, an empty file, a PNG cut short,
and a real PNG past the 50-megapixel limit (1 bit per pixel, so it is small on disk and quick to make)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from PIL import Image


def png(size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A complete, valid black-and-white PNG of width x height pixels, written row by row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])  # 1 bit, greyscale
    deflate = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte, then the row's bits
    pixels = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def write_bad_files(folder: Path) -> dict[str, Path]:
    """The four files, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "notes.png": b"Shopping list: eggs, milk, a hot air balloon.\n",
        "empty.png": b"",
        "cut.png": png((400, 300))[:-200],
        # 8000x8000 (64 MP): past the limit, and the browser's own preview of it is quick. A 400 MP file froze
        # Chromium's page for ~7 s after the refusal (its decoder, not the app: the app's process stayed idle).
        "huge.png": huge_png(8000, 8000),
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    return paths
