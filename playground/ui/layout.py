"""The page: layout and event wiring only. What each event does lives in handlers.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components import Component
from gradio.events import Dependency

from playground.models import ASPECT_RATIOS, MODELS
from playground.ui.arena_handlers import ArenaHandlers
from playground.ui.arena_tab import ArenaUI, build_arena_tab, wire_arena
from playground.ui.format import model_short
from playground.ui.forms import DEFAULT_SAFETY, FORM_FIELDS, empty_keys
from playground.ui.handlers import Handlers
from playground.ui.history_handlers import HistoryHandlers
from playground.ui.history_tab import build_history_tab, wire_history
from playground.ui.panels import HEAD_SLOTS, PANEL_SLOTS, PanelUI, TabKind, build_panel

ASSETS = Path(__file__).parent / "assets"
EXAMPLE_IMAGE = ASSETS / "example-input.png"
STORAGE_KEY = "flux-kontext-playground-keys"
OWNER_STORAGE_KEY = "flux-kontext-playground-owner"  # an opaque id: on a shared page, History lists its runs only
TITLE = (
    "# FLUX.1 Kontext playground\n"
    "One prompt, many hosted APIs side by side: status, image, latency, cost and the exact request of each."
)
TEXT_EXAMPLES = [
    "a red fox in a snowy birch forest, watercolor",
    "a neon sign that reads 'KONTEXT' on a wet brick wall at night",
    "a cozy reading nook with a sleeping cat, isometric 3D render",
]
EDIT_EXAMPLES = ["make it a snowy winter evening", "turn it into a watercolor painting", "add a red hot air balloon"]
# Three panels a row at most, so a lone last panel does not stretch across the page.
CSS = """
.result-panel { max-width: calc((100% - 2 * var(--layout-gap)) / 3); }
@media (max-width: 1000px) { .result-panel { max-width: 100%; } }
.panel-status p { margin: 0; }
"""


@dataclass
class TabUI:
    """The components of one tab; both tabs share this shape (Edit adds the input image).

    ``controls`` maps each name of forms.FORM_FIELDS[kind] to its component: the handlers read values by
    those names, so nothing depends on the order controls happen to be built in.
    """

    kind: TabKind
    controls: dict[str, Component]
    generate: gr.Button
    stop: gr.Button
    preview: gr.Markdown
    head: dict[str, Component]
    panels: list[PanelUI] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = set(FORM_FIELDS[self.kind]) ^ set(self.controls)
        assert not missing, f"the {self.kind} tab's controls and FORM_FIELDS differ: {sorted(missing)}"

    @property
    def prompt(self) -> gr.Textbox:
        return self.controls["prompt"]  # type: ignore[return-value]

    @property
    def providers(self) -> gr.CheckboxGroup:
        return self.controls["providers"]  # type: ignore[return-value]

    @property
    def image(self) -> gr.Image | None:
        return self.controls.get("image_path")  # type: ignore[return-value]

    @property
    def image_url(self) -> gr.Textbox | None:
        return self.controls.get("image_url")  # type: ignore[return-value]

    def form_inputs(self) -> list[Component]:
        """The controls in FORM_FIELDS order, as handlers.forms.named_inputs reads them."""
        return [self.controls[name] for name in FORM_FIELDS[self.kind]]

    def outputs(self) -> list[Component]:
        """HEAD_SLOTS, then each panel's PANEL_SLOTS: the order panels.Renderer fills."""
        head = [self.head[name] for name in HEAD_SLOTS]
        return head + [getattr(panel, slot) for panel in self.panels for slot in PANEL_SLOTS[self.kind]]


def build_ui(handlers: Handlers, *, secret: str, arena: ArenaHandlers | None = None) -> gr.Blocks:
    """The whole page: banner, keys, the Text to image, Edit, History and Arena tabs, wired to ``handlers``."""
    history = HistoryHandlers(handlers)
    with gr.Blocks(title="FLUX.1 Kontext playground", analytics_enabled=False) as demo:
        gr.Markdown(TITLE)
        banner = gr.Markdown(handlers.banner(), elem_id="banner")
        keys_state = gr.BrowserState(empty_keys(), storage_key=STORAGE_KEY, secret=secret)
        owner_state = gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=secret)  # set on load
        key_boxes, keys_status, save, forget = _keys_section(handlers)
        with gr.Tabs():
            with gr.Tab("Text to image", id="text"):
                text = _tab("text", handlers)
            with gr.Tab("Edit", id="edit"):
                edit = _tab("edit", handlers)
            with gr.Tab("History", id="history") as history_tab:
                history_ui = build_history_tab(history)
            arena_ui = _arena_tab(arena)
        runs = [event for tab in (text, edit) for event in _wire_tab(demo, tab, handlers, keys_state, owner_state)]
        _wire_edit_chain(edit, handlers)
        if history_ui is not None:
            states = dict(keys_state=keys_state, owner_state=owner_state)
            wire_history(demo, history_ui, history, tab=history_tab, runs_elsewhere=runs, **states)
        if arena is not None and arena_ui is not None:
            wire_arena(demo, arena_ui, arena, keys_state=keys_state, owner_state=owner_state)
        selections = [text.providers, edit.providers]
        save.click(
            handlers.save_keys,
            inputs=[keys_state, *selections, *key_boxes],
            outputs=[keys_state, keys_status, *selections, *key_boxes],
            api_visibility="private",
        )
        forget.click(
            handlers.forget_keys,
            inputs=selections,
            outputs=[keys_state, keys_status, *selections],
            api_visibility="private",
        )
        demo.load(
            handlers.on_load,
            inputs=[keys_state, *selections],
            outputs=[banner, *selections, keys_status],
            api_visibility="private",
        )
    demo.queue(default_concurrency_limit=None)  # every handler awaits providers or is quick: nobody queues
    return demo  # type: ignore[no-any-return]


def _arena_tab(arena: ArenaHandlers | None) -> ArenaUI | None:
    if arena is None:
        return None
    with gr.Tab("Arena", id="arena", elem_id="arena-tab"):
        return build_arena_tab(arena)


def _keys_section(handlers: Handlers) -> tuple[list[gr.Textbox], gr.Markdown, gr.Button, gr.Button]:
    with gr.Accordion("Keys: use your own API keys", open=False, elem_id="keys"):
        note = (
            "Not needed in sandbox mode. " if handlers.options.sandbox else ""
        ) + "Keys are kept encrypted in this browser only and sent with your own runs; they are never shown again."
        gr.Markdown(note)
        with gr.Row():
            boxes = [
                gr.Textbox(label=f"{spec.label} ({spec.key_env})", type="password", min_width=220, elem_id=f"key-{n}")
                for n, spec in handlers.specs.items()
            ]
        with gr.Row():
            save = gr.Button("Save keys in this browser", size="sm", variant="primary")
            forget = gr.Button("Forget my keys", size="sm")
        status = gr.Markdown(elem_id="keys-status")
    return boxes, status, save, forget


def _tab(kind: TabKind, handlers: Handlers) -> TabUI:
    """One tab's controls, buttons, panels and summary (called once per tab)."""
    controls: dict[str, Component] = {}
    image = None
    with gr.Row():
        with gr.Column(scale=3):
            if kind == "edit":
                image, controls["image_url"] = _input_image()
                controls["image_path"] = image
            controls["prompt"] = prompt = gr.Textbox(
                label="Prompt", lines=2, elem_id=f"{kind}-prompt", placeholder=_placeholder(kind)
            )
            choices = handlers.provider_choices({})
            controls["providers"] = gr.CheckboxGroup(
                choices, value=handlers.default_providers(kind, {}), label="Providers", elem_id=f"{kind}-providers"
            )
        with gr.Column(scale=2):
            controls |= _settings(kind)
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id=f"{kind}-generate", scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{kind}-stop", scale=1)
    preview = gr.Markdown(elem_id=f"{kind}-preview")
    message = gr.Markdown(elem_id=f"{kind}-message", label="message")
    _examples(kind, prompt, image)
    with gr.Row(equal_height=False):
        panels = [build_panel(kind, key, handlers.specs[key[0]].label) for key in handlers.keys]
    summary = gr.Markdown(elem_id=f"{kind}-summary", label="summary")
    head: dict[str, Component] = {"seed": controls["seed"], "message": message, "summary": summary}
    return TabUI(kind, controls, generate, stop, preview, head, panels)


def _input_image() -> tuple[gr.Image, gr.Textbox]:
    with gr.Row():
        image = gr.Image(
            label="Input image",
            type="filepath",
            image_mode=None,  # keep the uploaded file as it is: no conversion, no re-encoding
            sources=["upload", "clipboard"],
            height=260,
            elem_id="edit-image",
        )
        url = gr.Textbox(
            label="…or an image URL",
            placeholder="https://example.com/photo.jpg",
            info="Used when no file is uploaded. JPEG, PNG or WebP, up to 10 MB.",
            elem_id="edit-image-url",
        )
    return image, url


def _placeholder(kind: TabKind) -> str:
    return "Describe the image" if kind == "text" else "Describe the edit, e.g. 'make it night time'"


def _settings(kind: TabKind) -> dict[str, Component]:
    """The controls every provider shares, by their FORM_FIELDS names."""
    models = gr.CheckboxGroup([(model_short(m), m) for m in MODELS], value=[MODELS[0]], label="Models")
    default = "match input" if kind == "edit" else "provider default"
    with gr.Row():
        aspect = gr.Dropdown([(default, "")] + [(r, r) for r in ASPECT_RATIOS], value="", label="Aspect ratio")
        fmt = gr.Radio(["jpeg", "png"], value="jpeg", label="Output format")
    with gr.Row():
        seed = gr.Textbox(label="Seed", placeholder="none", info="Empty: none sent", elem_id=f"{kind}-seed")
        same = gr.Checkbox(value=True, label="same seed for all", info="Else seed + i per job")
        randomize = gr.Checkbox(value=False, label="randomize", info="New seed each run")
    with gr.Accordion("Advanced settings", open=False):
        safety = gr.Dropdown(
            [("provider default", DEFAULT_SAFETY)] + [(str(v), str(v)) for v in range(7)],
            value=DEFAULT_SAFETY,
            label="Safety tolerance (0 strictest, 6 most permissive)",
        )
        upsampling = gr.Checkbox(value=False, label="Prompt upsampling")
        translation = gr.Radio(["default", "on", "off"], value="default", label="Prompt translation")
        guidance = gr.Textbox(label="Guidance (1 to 20)", placeholder="provider default", elem_id=f"{kind}-guidance")
    return {
        "models": models,
        "aspect_ratio": aspect,
        "output_format": fmt,
        "seed": seed,
        "same_seed": same,
        "randomize": randomize,
        "safety": safety,
        "upsampling": upsampling,
        "translation": translation,
        "guidance": guidance,
    }


def _examples(kind: TabKind, prompt: gr.Textbox, image: gr.Image | None) -> None:
    if kind == "text":
        gr.Examples([[p] for p in TEXT_EXAMPLES], inputs=[prompt], label="Example prompts")
    elif image is not None:
        rows = [[str(EXAMPLE_IMAGE), p] for p in EDIT_EXAMPLES]
        gr.Examples(rows, inputs=[image, prompt], label="Examples (a small image that ships with the playground)")


def _wire_tab(
    demo: gr.Blocks, tab: TabUI, handlers: Handlers, keys_state: gr.BrowserState, owner_state: gr.BrowserState
) -> tuple[Dependency, Dependency]:
    """Generate, Stop and the preview of one tab; (the run, the stop) events, for History to follow."""
    generate = handlers.generate_text if tab.kind == "text" else handlers.generate_edit
    preview = handlers.preview_text if tab.kind == "text" else handlers.preview_edit
    stop_fn = handlers.stop_text if tab.kind == "text" else handlers.stop_edit
    inputs = [*tab.form_inputs(), keys_state]
    run = gr.on(
        triggers=[tab.generate.click, tab.prompt.submit],
        fn=generate,
        inputs=[*inputs, owner_state],
        outputs=tab.outputs(),
        api_name="generate" if tab.kind == "text" else "edit",
        concurrency_limit=None,  # provider calls are I/O: visitors must not wait for each other
        show_progress_on=[tab.head["summary"]],
    )
    stop = tab.stop.click(
        stop_fn, outputs=tab.outputs(), cancels=[run], api_visibility="private", concurrency_limit=None
    )
    watched: list[Any] = [c for c in tab.form_inputs() if c is not tab.prompt]
    gr.on(
        triggers=[c.change for c in watched],
        fn=preview,
        inputs=inputs,
        outputs=tab.preview,
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    demo.load(preview, inputs=inputs, outputs=tab.preview, api_visibility="private", show_progress="hidden")
    return run, stop


def _wire_edit_chain(edit: TabUI, handlers: Handlers) -> None:
    """Each panel's 'Use as input' puts its result into the Edit input."""
    targets: list[Any] = [edit.image, edit.image_url]
    for panel in edit.panels:
        if panel.use is not None and panel.slider is not None:
            panel.use.click(handlers.use_as_input, inputs=[panel.slider], outputs=targets, api_visibility="private")
