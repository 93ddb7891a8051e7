"""Uploads reach the playground's own checks: a file Pillow refuses is not stopped by Gradio with a bare error.

Gradio's Image component opens every upload with Pillow before the handler runs; a decompression bomb or a file
that is not an image then fails the event with no sentence. Wrapped here (one instance, not a subclass: Gradio
writes a .pyi beside every Component subclass), the upload's path goes through, and ``images.input_from_upload``
says what is wrong with it.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

_REFUSED_BY_PILLOW = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


def checked_by_us(image: gr.Image) -> gr.Image:
    """``image`` (type="filepath"), passing the uploaded path on even when Pillow cannot open the file."""
    plain = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return plain(payload)
        except _REFUSED_BY_PILLOW:
            path = getattr(payload, "path", None)
            return str(path) if path else None

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image
