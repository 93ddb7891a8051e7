"""The Text to image and Edit tabs: controls, then the results (message, counts, grid, panels), then examples.

Results come first: Generate sits right under the prompt, and pressing it brings the comparison grid into view,
directly under the controls. Layout and wiring only; what each event does lives in handlers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.components import Component

from playground.models import ASPECT_RATIOS, MODELS
from playground.ui.format import model_short
from playground.ui.forms import DEFAULT_SAFETY, FORM_FIELDS
from playground.ui.page import ASSETS, PageParts
from playground.ui.panels import HEAD_SLOTS, PANEL_SLOTS, PanelUI, TabKind, build_panel, grid_component, results_header
from playground.ui.upload_input import build_input_image, wire_upload_check

EXAMPLE_IMAGE = ASSETS / "example-input.png"
TITLES = {"text": "Text to image", "edit": "Edit"}
TEXT_EXAMPLES = [
    "a red fox in a snowy birch forest, watercolor",
    "a neon sign that reads 'KONTEXT' on a wet brick wall at night",
    "a cozy reading nook with a sleeping cat, isometric 3D render",
]
EDIT_EXAMPLES = ["make it a snowy winter evening", "turn it into a watercolor painting", "add a red hot air balloon"]
ENTER_HINT = "Enter runs it · Shift+Enter starts a new line"


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
    image_note: gr.Markdown | None = None

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
    def grid(self) -> gr.HTML:
        return self.head["grid"]  # type: ignore[return-value]

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


def build_generate_tab(page: PageParts, kind: TabKind) -> TabUI:
    """The tab (a gr.Tab of its own), wired; its runs are added to ``page.runs`` for History to follow."""
    with gr.Tab(TITLES[kind], id=kind):
        tab = _layout(page, kind)
    _wire(page, tab)
    page.tabs[kind] = tab
    return tab


def _layout(page: PageParts, kind: TabKind) -> TabUI:
    handlers = page.handlers
    controls: dict[str, Component] = {}
    image_note = None
    with gr.Row(elem_classes="kx-controls"):
        with gr.Column(scale=3, min_width=300):
            if kind == "edit":
                controls["image_path"], controls["image_url"], image_note = build_input_image()
            controls["prompt"] = prompt = gr.Textbox(
                label="Prompt" if kind == "text" else "What to change",
                lines=1,
                max_lines=8,
                placeholder=_placeholder(kind),
                info=ENTER_HINT,
                elem_id=f"{kind}-prompt",
            )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id=f"{kind}-generate", scale=3, min_width=120)
                stop = gr.Button("Stop", variant="stop", elem_id=f"{kind}-stop", scale=1, min_width=80)
            preview = gr.Markdown(elem_id=f"{kind}-preview")
            controls["providers"] = gr.CheckboxGroup(
                handlers.provider_choices({}, kind),
                value=handlers.default_providers(kind, {}),
                label="Providers",
                info="Each one gets the same request; untick any you want to leave out.",
                elem_id=f"{kind}-providers",
            )
        with gr.Column(scale=2, min_width=300):
            controls |= _settings(kind, _guidance_takers(page))
    with gr.Column(elem_id=f"{kind}-results", elem_classes="kx-results"):
        message, summary, bundle, resume = results_header(kind)
        assert resume is not None
        grid = grid_component(kind)
        with gr.Row(equal_height=False, elem_id=f"{kind}-panels"):
            panels = [build_panel(kind, key, handlers.specs[key[0]].label) for key in handlers.keys]
    _examples(kind, prompt, controls.get("image_path"))
    head: dict[str, Component] = {
        "seed": controls["seed"],
        "message": message,
        "summary": summary,
        "grid": grid,
        "bundle": bundle,
        "resume": resume,
    }
    return TabUI(kind, controls, generate, stop, preview, head, panels, image_note)


def _placeholder(kind: TabKind) -> str:
    if kind == "text":
        return "Describe the picture, e.g. 'a red fox in a snowy forest, watercolor'"
    return "Describe the edit, e.g. 'make it night time'"


def _guidance_takers(page: PageParts) -> str:
    takers = [spec.label for spec in page.handlers.specs.values() if spec.capabilities.guidance]
    return " and ".join(takers) if takers else "no provider here"


def _settings(kind: TabKind, guidance_takers: str) -> dict[str, Component]:
    """The controls every provider shares, by their FORM_FIELDS names, in words a newcomer follows."""
    models = gr.CheckboxGroup(
        [(model_short(m), m) for m in MODELS],
        value=[MODELS[0]],
        label="Models",
        elem_id=f"{kind}-models",
        info="FLUX.1 Kontext [pro] or [max]; tick both to run each provider twice.",
    )
    if kind == "edit":
        default = ("match the input", "")
        ratio_info = "'Match the input' asks each provider for the shape it offers nearest to the input's."
    else:
        default = ("each provider's default", "")
        ratio_info = "The picture's shape. Left to each provider, shapes differ (most give 16:9 or 1:1)."
    with gr.Row(elem_classes="kx-wrap-row"):
        aspect = gr.Dropdown(
            [default] + [(r, r) for r in ASPECT_RATIOS], value="", label="Aspect ratio", info=ratio_info, min_width=200
        )
        fmt = gr.Radio(["jpeg", "png"], value="jpeg", label="File type", min_width=140)
    with gr.Row(elem_classes="kx-wrap-row"):
        seed = gr.Textbox(
            label="Seed",
            placeholder="random",
            info="A number repeats a picture (where the provider takes a seed); empty lets each choose.",
            elem_id=f"{kind}-seed",
            min_width=180,
        )
        same = gr.Checkbox(
            value=True,
            label="Same seed for every job",
            info="Off: the 2nd job gets seed + 1, the 3rd seed + 2…",
            min_width=150,
        )
        randomize = gr.Checkbox(value=False, label="New seed each run", info="A fresh random seed", min_width=150)
    with gr.Accordion("More settings", open=False):
        safety = gr.Dropdown(
            [("each provider's default", DEFAULT_SAFETY)] + [(str(v), str(v)) for v in range(7)],
            value=DEFAULT_SAFETY,
            label="Safety tolerance",
            info="How strict the content filter is: 0 is the strictest, 6 the most permissive.",
        )
        upsampling = gr.Checkbox(
            value=False, label="Prompt upsampling", info="Let the provider rewrite the prompt in more detail first."
        )
        translation = gr.Radio(
            [("each provider's default", "default"), ("on", "on"), ("off", "off")],
            value="default",
            label="Translate the prompt to English",
            info="Some providers translate by default; the others ignore this.",
        )
        guidance = gr.Textbox(
            label="Guidance (1 to 20)",
            placeholder="each provider's default",
            info=f"How closely the picture follows the prompt; only {guidance_takers} take it.",
            elem_id=f"{kind}-guidance",
        )
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


def _examples(kind: TabKind, prompt: gr.Textbox, image: Component | None) -> None:
    if kind == "text":
        gr.Examples([[p] for p in TEXT_EXAMPLES], inputs=[prompt], label="Example prompts")
    elif image is not None:
        rows = [[str(EXAMPLE_IMAGE), p] for p in EDIT_EXAMPLES]
        gr.Examples(rows, inputs=[image, prompt], label="Examples (a small picture that comes with the playground)")


def _wire(page: PageParts, tab: TabUI) -> None:
    """Generate, Stop, Resume and the preview of one tab; the run is added to ``page.runs``."""
    handlers = page.handlers
    generate = handlers.generate_text if tab.kind == "text" else handlers.generate_edit
    preview = handlers.preview_text if tab.kind == "text" else handlers.preview_edit
    stop_fn = handlers.stop_text if tab.kind == "text" else handlers.stop_edit
    resume_fn = handlers.resume_text if tab.kind == "text" else handlers.resume_edit
    inputs = [*tab.form_inputs(), page.keys_state]
    run = gr.on(
        triggers=[tab.generate.click, tab.prompt.submit],
        fn=generate,
        inputs=[*inputs, page.owner_state],
        outputs=tab.outputs(),
        api_name="generate" if tab.kind == "text" else "edit",
        concurrency_limit=None,  # provider calls are I/O: visitors must not wait for each other
        show_progress_on=[tab.head["summary"]],
        js=f"(...args) => {{ window.kx && window.kx.toResults('{tab.kind}'); return args; }}",
    )
    # Stop does not cancel the run's handler: it asks the run to stop and waits until the engine has recorded
    # it, and the run's own handler shows the stopped panels (so nothing it sends is lost).
    stop = tab.stop.click(stop_fn, api_visibility="private", concurrency_limit=None, show_progress="hidden")
    resume_button: gr.Button = tab.head["resume"]  # type: ignore[assignment]
    resumes: list[Any] = [tab.grid.select, resume_button.click]
    resume = gr.on(
        resumes,
        resume_fn,
        inputs=[page.keys_state],
        outputs=tab.outputs(),
        api_visibility="private",
        concurrency_limit=None,
        show_progress_on=[tab.head["summary"]],
    )
    watched: list[Any] = [c for c in tab.form_inputs() if c is not tab.prompt]
    gr.on(
        triggers=[c.change for c in watched] + [tab.prompt.blur],
        fn=preview,
        inputs=inputs,
        outputs=tab.preview,
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    page.demo.load(preview, inputs=inputs, outputs=tab.preview, api_visibility="private", show_progress="hidden")
    page.runs += [run, stop, resume]
    if tab.kind == "edit":
        _wire_edit_chain(tab, handlers)


def _wire_edit_chain(edit: TabUI, handlers: Any) -> None:
    """Each panel's 'Use as input' puts its result into the Edit input, says so, and scrolls up to it."""
    assert edit.image is not None and edit.image_url is not None and edit.image_note is not None
    wire_upload_check(edit.image, edit.image_note)
    targets: list[Any] = [edit.image, edit.image_url, edit.image_note]
    scroll = "(...args) => { window.kx && window.kx.toInput(); return args; }"
    for panel in edit.panels:
        if panel.use is not None and panel.slider is not None:
            panel.use.click(handlers.use_as_input, [panel.slider], targets, api_visibility="private", js=scroll)
