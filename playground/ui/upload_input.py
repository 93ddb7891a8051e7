"""The Edit tab's input: an image box whose uploads are checked by their bytes, with one sentence beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from playground.ui.format import BLOCKED, INFO
from playground.ui.uploads import UploadProblem, check_upload


def checked_image(**options: Any) -> gr.Image:
    """A gr.Image that hands the uploaded file's path to the playground unread.

    Gradio's own Image opens every upload with Pillow before any handler runs; a file that is not an image
    then fails inside Gradio, with its internals in the page and a traceback in the log. The playground checks
    the bytes itself (uploads.check_upload) and answers with a sentence. (Set on the instance: a subclass would
    make Gradio write a type stub next to this module.)
    """
    image = gr.Image(**options)
    image.preprocess = _path_only  # type: ignore[method-assign]
    return image


def _path_only(payload: Any) -> str | None:
    return None if payload is None or payload.path is None else str(payload.path)


def build_input_image() -> tuple[gr.Image, gr.Textbox, gr.Markdown]:
    """The upload box, the URL box beside it, and the note that says what was accepted or refused."""
    with gr.Row(elem_classes="kx-wrap-row"):
        image = checked_image(
            label="Input image",
            type="filepath",
            image_mode=None,  # keep the uploaded file as it is: no conversion, no re-encoding
            sources=["upload", "clipboard"],
            height=260,
            min_width=220,
            elem_id="edit-image",
        )
        url = gr.Textbox(
            label="…or an image URL",
            placeholder="https://example.com/photo.jpg",
            info="Used when no file is uploaded. JPEG, PNG or WebP, up to 10 MB.",
            min_width=220,
            elem_id="edit-image-url",
        )
    note = gr.Markdown(elem_id="edit-image-note", label="input image note")
    return image, url, note


def checked_upload(path: str | None) -> tuple[Any, str]:
    """An uploaded file as the box should keep it (or cleared), and the sentence to show beside it."""
    if not path:
        return gr.skip(), ""
    try:
        upload = check_upload(path, Path(path).name)
    except UploadProblem as problem:
        return None, f"{BLOCKED} {problem}"
    return gr.skip(), f"{INFO} {upload.describe()}"


def wire_upload_check(image: gr.Image, note: gr.Markdown) -> None:
    """Check each upload at once; clearing the box clears the note."""
    image.upload(checked_upload, image, [image, note], api_visibility="private", show_progress="hidden")
    image.clear(lambda: "", None, note, api_visibility="private", show_progress="hidden", queue=False)
