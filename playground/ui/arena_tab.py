"""The Arena tab: layout and event wiring only. What each event does lives in arena_handlers.py."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from gradio.components import Component

from playground.models import ASPECT_RATIOS, MODELS, model_info
from playground.standings import HEADERS
from playground.ui.arena_handlers import ARENA_FIELDS, ARENA_OUTPUTS, CHOICES, ArenaHandlers
from playground.ui.arena_view import CSS, HELP, SEEN_JS

MODES = [("Text to image", "t2i"), ("Edit", "edit")]
PAIRINGS = [("Same model, different hosts", "same-model"), ("Any provider x model", "any")]


@dataclass
class BoardUI:
    """The leaderboard's components."""

    box: gr.Accordion
    mode: gr.Radio
    view: gr.Radio
    refresh: gr.Button
    table: gr.Dataframe
    note: gr.Markdown
    export_votes: gr.Button
    export_board: gr.Button
    file: gr.File


@dataclass
class ArenaUI:
    """The tab's components: ``controls`` by ARENA_FIELDS name; ``outputs()`` in ARENA_OUTPUTS order."""

    controls: dict[str, Component]
    start: gr.Button
    status: gr.Markdown
    view: gr.HTML
    votes: dict[str, gr.Button]  # by choice
    reveal: gr.Markdown
    round: gr.State
    board: BoardUI

    def __post_init__(self) -> None:
        assert set(self.controls) == set(ARENA_FIELDS), sorted(set(self.controls) ^ set(ARENA_FIELDS))

    def inputs(self) -> list[Component]:
        return [self.controls[name] for name in ARENA_FIELDS]

    def outputs(self) -> list[Component]:
        named: dict[str, Component] = {"status": self.status, "view": self.view, "reveal": self.reveal}
        named |= {"round": self.round, "start": self.start} | {f"vote_{c}": b for c, b in self.votes.items()}
        return [named[name] for name in ARENA_OUTPUTS]


def build_arena_tab(arena: ArenaHandlers) -> ArenaUI:
    """The tab's content (inside its gr.Tab)."""
    gr.Markdown(
        "Which host of the same model really makes the better image? Two hosts get your prompt; you see the images "
        "without names, vote, and then learn who made which."
    )
    with gr.Accordion("How the arena works", open=False):
        gr.Markdown(HELP)
    controls = _controls()
    start = gr.Button("Start round", variant="primary", interactive=False, elem_id="arena-start")  # see wire_arena
    with gr.Column(elem_id="arena-play"):
        status = gr.Markdown(elem_id="arena-status", label="arena status")
        view = gr.HTML(
            "", js_on_load=SEEN_JS, css_template=CSS, elem_id="arena-round", min_height=40, label="arena round"
        )
        with gr.Row():
            votes = {choice: _vote_button(choice) for choice in CHOICES}
        reveal = gr.Markdown(elem_id="arena-reveal", label="arena reveal")
    return ArenaUI(controls, start, status, view, votes, reveal, gr.State(None), _board())


def _controls() -> dict[str, Component]:
    with gr.Row():
        mode = gr.Radio(MODES, value="t2i", label="Mode", elem_id="arena-mode")
        pairing = gr.Radio(PAIRINGS, value="same-model", label="Compare", elem_id="arena-pairing")
        model = gr.Radio(
            [("either", "")] + [(model_info(m).name, m) for m in MODELS], value="", label="Model", elem_id="arena-model"
        )
        count = gr.Radio([2, 3, 4], value=2, label="Images per round", elem_id="arena-count")
    with gr.Row(visible=True):
        image = gr.Image(
            label="Input image", type="filepath", image_mode=None, height=220, visible=False, elem_id="arena-image"
        )
        url = gr.Textbox(label="…or an image URL", visible=False, elem_id="arena-image-url")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=2, scale=4, elem_id="arena-prompt", placeholder="Describe the image")
        ratio = gr.Dropdown(
            [("automatic", "")] + [(r, r) for r in ASPECT_RATIOS],
            value="",
            label="Aspect ratio",
            info="Automatic: 1:1 for text, the input's shape for edits",
            scale=1,
            min_width=200,
        )
        seed = gr.Textbox(label="Seed", placeholder="random, shared", scale=1, elem_id="arena-seed")
    return {
        "mode": mode,
        "pairing": pairing,
        "model": model,
        "count": count,
        "prompt": prompt,
        "image_path": image,
        "image_url": url,
        "aspect_ratio": ratio,
        "seed": seed,
    }


def _vote_button(choice: str) -> gr.Button:
    label = {"tie": "Tie", "both_bad": "Both bad"}.get(choice, f"{choice} is better")
    visible = choice in ("A", "B", "tie", "both_bad")
    return gr.Button(label, visible=visible, interactive=False, elem_id=f"arena-vote-{choice}", min_width=90)


def _board() -> BoardUI:
    with gr.Accordion("Leaderboard", open=False, elem_id="arena-board-box") as box:
        with gr.Row(equal_height=False):
            mode = gr.Radio(MODES, value="t2i", label="Board", elem_id="arena-board-mode")
            view = gr.Radio(
                [("Every provider x model", "targets"), ("Same model: hosts ranked per model", "same-model")],
                value="same-model",
                label="View",
                elem_id="arena-board-view",
            )
            refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="arena-board-refresh")
        table = gr.Dataframe(
            headers=list(HEADERS), interactive=False, wrap=True, elem_id="arena-board", label="leaderboard"
        )
        note = gr.Markdown(elem_id="arena-board-note", label="board note")
        with gr.Row():
            votes = gr.Button("Export votes (JSONL)", size="sm", elem_id="arena-export-votes")
            board = gr.Button("Export board (CSV)", size="sm", elem_id="arena-export-board")
        file = gr.File(label="Download", elem_id="arena-export", interactive=False, visible=False, height=80)
    return BoardUI(box, mode, view, refresh, table, note, votes, board, file)


def wire_arena(
    demo: gr.Blocks, ui: ArenaUI, arena: ArenaHandlers, *, keys_state: gr.BrowserState, owner_state: gr.BrowserState
) -> None:
    """Start (button or Enter), the 'seen' report, the vote buttons, the controls' visibility, the board."""
    # Rounds and votes belong to the browser's owner id, which a new browser receives on load: Start is
    # enabled once the id is there (at load for a returning browser, when it is set for a new one).
    demo.load(arena.owner_ready, owner_state, ui.start, api_visibility="private", show_progress="hidden")
    owner_state.change(arena.owner_ready, owner_state, ui.start, api_visibility="private", show_progress="hidden")
    prompt: gr.Textbox = ui.controls["prompt"]  # type: ignore[assignment]
    mode: gr.Radio = ui.controls["mode"]  # type: ignore[assignment]
    pairing: gr.Radio = ui.controls["pairing"]  # type: ignore[assignment]
    outputs = ui.outputs()
    gr.on(
        [ui.start.click, prompt.submit],
        arena.start,
        [*ui.inputs(), keys_state, owner_state],
        outputs,
        api_name="arena_start",
        concurrency_limit=None,  # waits on providers, like Generate
        show_progress_on=[ui.status],
    )
    ui.view.seen(arena.seen, [ui.round, owner_state], ui.status, api_name="arena_seen", show_progress="hidden")
    for choice, button in ui.votes.items():
        button.click(arena.voter(choice), [ui.round, owner_state], outputs, api_name=f"arena_vote_{choice}")
    image = [ui.controls["image_path"], ui.controls["image_url"]]
    mode.change(arena.mode_changed, mode, image, api_visibility="private")
    pairing.change(arena.pairing_changed, pairing, ui.controls["model"], api_visibility="private")
    _wire_board(ui.board, arena)


def _wire_board(board: BoardUI, arena: ArenaHandlers) -> None:
    # The board names hosts, so it is built only when asked for: opening it, Refresh, or changing mode or view.
    picked = [board.mode, board.view]
    triggers = [board.box.expand, board.refresh.click, board.mode.change, board.view.change]
    # always_last: a change made while the board is being fitted is applied after it, never dropped or overtaken.
    gr.on(triggers, arena.board, picked, [board.table, board.note], api_name="arena_board", trigger_mode="always_last")
    board.export_votes.click(arena.export_votes, board.mode, board.file, api_visibility="private")
    board.export_board.click(arena.export_board, picked, board.file, api_visibility="private")
