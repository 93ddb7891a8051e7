"""The Keys panel: one row per provider (name, where its keys are made, the key box, saved or not), and what
Save and Forget do. Keys are kept in the visitor's browser only, sealed by the server, and checked before they
are kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.ui import forms
from playground.ui.format import BLOCKED
from playground.ui.handlers import Handlers

SAVED, NOT_SAVED = "✔ saved", "not saved"


@dataclass
class KeysUI:
    """The panel's components: a box and a mark per provider (registry order), the buttons, the status."""

    boxes: list[gr.Textbox]
    marks: list[gr.Markdown]
    save: gr.Button
    forget: gr.Button
    status: gr.Markdown


def build_keys_panel(handlers: Handlers) -> KeysUI:
    """The panel (closed until opened)."""
    with gr.Accordion("Keys: use your own API keys", open=False, elem_id="keys"):
        note = ("Not needed in sandbox mode. " if handlers.options.sandbox else "") + (
            "A key is kept in this browser only, sealed by the server (the page itself cannot read it back), and "
            "sent with your own runs; it is never shown again."
        )
        gr.Markdown(note)
        boxes, marks = [], []
        for name, spec in handlers.specs.items():
            with gr.Row(equal_height=True, elem_classes="kx-key-row kx-wrap-row"):
                where = f" · [get a key]({spec.key_url})" if spec.key_url else ""
                gr.Markdown(f"**{spec.label}**{where}", elem_classes="kx-key-name", min_width=170)
                boxes.append(
                    gr.Textbox(
                        label=f"{spec.label} key ({spec.key_env})",
                        show_label=False,
                        placeholder=spec.key_env,
                        type="password",
                        scale=3,
                        min_width=200,
                        elem_id=f"key-{name}",
                    )
                )
                marks.append(gr.Markdown(NOT_SAVED, elem_id=f"key-{name}-mark", elem_classes="kx-key-mark"))
        with gr.Row():
            save = gr.Button("Save keys in this browser", size="sm", variant="primary", elem_id="keys-save")
            forget = gr.Button("Forget my keys", size="sm", elem_id="keys-forget")
        status = gr.Markdown(elem_id="keys-status")
    return KeysUI(boxes, marks, save, forget, status)


class KeysHandlers:
    """What Save, Forget and a page load do with the keys a browser keeps."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self.specs = handlers.specs

    def save(
        self, request: gr.Request, blob: object, text_sel: list[str], edit_sel: list[str], *typed: str
    ) -> tuple[Any, ...]:
        """Keep every typed key that has a key's shape; clear those boxes; say what was refused and why."""
        entered = dict(zip(self.specs, (t.strip() for t in typed), strict=True))
        problems = {
            name: problem
            for name, key in entered.items()
            if key and (problem := forms.key_problem(self.specs[name], key))
        }
        kept = {self.specs[name].key_env: key for name, key in entered.items() if key and name not in problems}
        new_blob = forms.merge_keys(blob, kept, self.specs)
        added = [name for name, key in entered.items() if key and name not in problems]
        choices = self.handlers.choices(
            forms.visitor_keys(new_blob, self.specs), [*text_sel, *added], [*edit_sel, *added], request
        )
        boxes = [gr.update() if name in problems else "" for name in self.specs]  # a refused key stays to be fixed
        status = " ".join(f"{BLOCKED} {p}" for p in problems.values()) or self.status(new_blob)
        return (new_blob, status, *self.marks(new_blob), *choices, *boxes)

    def forget(self, request: gr.Request, text_sel: list[str], edit_sel: list[str]) -> tuple[Any, ...]:
        """Remove every key from the visitor's browser."""
        blob = forms.empty_keys()
        choices = self.handlers.choices({}, text_sel, edit_sel, request)
        return (blob, self.status(blob), *self.marks(blob), *choices)

    def on_load(self, request: gr.Request, blob: object, text_sel: list[str], edit_sel: list[str]) -> tuple[Any, ...]:
        """A visitor opened the page: the banner, provider lists including their own keys, what is saved."""
        keys = forms.visitor_keys(blob, self.specs)
        choices = self.handlers.choices(keys, text_sel, edit_sel, request)
        return (self.handlers.banner(request), *choices, self.status(blob), *self.marks(blob))

    def marks(self, blob: object) -> list[str]:
        saved = forms.stored_keys(blob, self.specs)
        return [SAVED if spec.key_env in saved else NOT_SAVED for spec in self.specs.values()]

    def status(self, blob: object) -> str:
        saved = forms.stored_keys(blob, self.specs)
        labels = [spec.label for spec in self.specs.values() if spec.key_env in saved]
        if not labels:
            return "No keys saved in this browser."
        return f"Keys saved in this browser for: {', '.join(labels)}. They are sent only with your own runs."


def wire_keys(
    demo: gr.Blocks, ui: KeysUI, keys: KeysHandlers, *, keys_state: Any, banner: Any, selections: list[Any]
) -> None:
    """Save, Forget, and what the page shows when it loads."""
    ui.save.click(
        keys.save,
        inputs=[keys_state, *selections, *ui.boxes],
        outputs=[keys_state, ui.status, *ui.marks, *selections, *ui.boxes],
        api_visibility="private",
    )
    ui.forget.click(
        keys.forget,
        inputs=selections,
        outputs=[keys_state, ui.status, *ui.marks, *selections],
        api_visibility="private",
    )
    demo.load(
        keys.on_load,
        inputs=[keys_state, *selections],
        outputs=[banner, *selections, ui.status, *ui.marks],
        api_visibility="private",
    )
