"""The History tab: layout and event wiring only. What each event does lives in history_handlers.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.components import Component
from gradio.events import Dependency

from playground.history import OUTCOMES
from playground.models import MODELS
from playground.ui.format import model_short
from playground.ui.history_handlers import HISTORY_HEAD, HistoryHandlers
from playground.ui.history_view import RUN_HEADERS
from playground.ui.panels import PANEL_SLOTS, PanelUI, build_panel

ANY = ("any", "")
HISTORY_OFF = "History is off in this app: runs are not kept, so there is nothing to list."


@dataclass
class HistoryUI:
    """The History tab's components."""

    query: gr.Textbox
    choices: list[gr.Dropdown]  # provider, model, outcome
    refresh: gr.Button
    table: gr.Dataframe
    note: gr.Markdown
    run_id: gr.Textbox
    open: gr.Button
    rerun: gr.Button
    resume: gr.Button
    stop: gr.Button
    head: dict[str, Component]
    panels: list[PanelUI] = field(default_factory=list)

    @property
    def filters(self) -> list[Component]:
        """In the order HistoryHandlers.list_runs takes them."""
        return [self.query, *self.choices]

    def outputs(self) -> list[Component]:
        """HISTORY_HEAD, then each panel's history slots: the order HistoryRenderer fills."""
        head = [self.head[name] for name in HISTORY_HEAD]
        return head + [getattr(panel, slot) for panel in self.panels for slot in PANEL_SLOTS["history"]]


def build_history_tab(history: HistoryHandlers) -> HistoryUI | None:
    """The tab's content (inside its gr.Tab); None, with a note, when the app keeps no history."""
    if history.store is None:
        gr.Markdown(HISTORY_OFF, elem_id="history-off")
        return None
    query, choices = _filters(history)
    table = gr.Dataframe(
        headers=RUN_HEADERS,
        interactive=False,
        wrap=True,
        max_height=380,
        column_widths=["108px", "25%", "86px", "124px", "30%", "72px", "136px"],
        label="runs",
        show_label=False,
        elem_id="history-runs",
    )
    with gr.Row(equal_height=True):
        note = gr.Markdown(elem_id="history-note", label="history note")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=110, elem_id="history-refresh")
    with gr.Row(equal_height=True):
        run_id = gr.Textbox(
            label="Run id",
            show_label=False,
            placeholder="Run id: select a row above, or paste one",
            scale=2,
            elem_id="history-run-id",
        )
        opened = gr.Button("Open", scale=1, elem_id="history-open")
        rerun = gr.Button("Re-run", variant="primary", scale=1, visible=False, elem_id="history-rerun")
        resume = gr.Button("Resume waiting", scale=1, visible=False, elem_id="history-resume")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="history-stop")
    run = gr.Markdown(elem_id="history-run", label="history run")
    message = gr.Markdown(elem_id="history-message", label="history message")
    with gr.Row(equal_height=False):
        specs = history.handlers.specs
        panels = [build_panel("history", key, specs[key[0]].label) for key in history.handlers.keys]
    summary = gr.Markdown(elem_id="history-summary", label="history summary")
    head: dict[str, Component] = {
        "run_id": run_id,
        "run": run,
        "message": message,
        "summary": summary,
        "rerun": rerun,
        "resume": resume,
    }
    return HistoryUI(query, choices, refresh, table, note, run_id, opened, rerun, resume, stop, head, panels)


def _filters(history: HistoryHandlers) -> tuple[gr.Textbox, list[gr.Dropdown]]:
    """Search box, and the provider, model and outcome filters."""
    providers = [ANY] + [(spec.label, name) for name, spec in history.handlers.specs.items()]
    with gr.Row(equal_height=True):
        query = gr.Textbox(
            label="Search prompts", placeholder="words from the prompt", scale=3, elem_id="history-query"
        )
        provider = gr.Dropdown(providers, value="", label="Provider", scale=1, elem_id="history-provider")
        model = gr.Dropdown([ANY] + [(model_short(m), m) for m in MODELS], value="", label="Model", scale=1)
        outcome = gr.Dropdown([ANY] + [(o, o) for o in OUTCOMES], value="", label="Outcome", scale=1)
    return query, [provider, model, outcome]


def wire_history(
    demo: gr.Blocks,
    ui: HistoryUI,
    history: HistoryHandlers,
    *,
    tab: gr.Tab,
    keys_state: gr.BrowserState,
    owner_state: gr.BrowserState,
    runs_elsewhere: Sequence[Dependency],
) -> None:
    """List on load, on Refresh, on any filter, on selecting the tab and after a run elsewhere; open, re-run, resume."""
    list_inputs: list[Any] = [*ui.filters, owner_state]
    list_outputs: list[Any] = [ui.table, ui.note]

    def relist(after: Dependency) -> None:
        after.then(history.list_runs, list_inputs, list_outputs, api_visibility="private", show_progress="hidden")

    triggers: list[Any] = [ui.refresh.click, ui.query.submit, tab.select, *[c.change for c in ui.choices]]
    gr.on(triggers, history.list_runs, list_inputs, list_outputs, api_name="history", show_progress="hidden")
    relist(demo.load(history.ensure_owner, owner_state, owner_state, api_visibility="private"))
    for run in runs_elsewhere:
        relist(run)
    outputs = ui.outputs()
    summary: list[Any] = [ui.head["summary"]]
    picked = ui.table.select(history.pick, outputs=ui.run_id, api_visibility="private")
    picked.then(history.open_run, [ui.run_id, owner_state], outputs, api_visibility="private", show_progress_on=summary)
    gr.on(
        [ui.open.click, ui.run_id.submit],
        history.open_run,
        [ui.run_id, owner_state],
        outputs,
        api_name="history_open",
        show_progress_on=summary,
    )
    acting = [ui.run_id, keys_state, owner_state]
    # Both wait on providers, like Generate: concurrency_limit=None, so visitors never queue behind each other.
    rerun = ui.rerun.click(
        history.rerun, acting, outputs, api_name="history_rerun", concurrency_limit=None, show_progress_on=summary
    )
    resume = ui.resume.click(
        history.resume, acting, outputs, api_name="history_resume", concurrency_limit=None, show_progress_on=summary
    )
    stop = ui.stop.click(history.stop, outputs=outputs, cancels=[rerun, resume], api_visibility="private")
    for event in (rerun, resume, stop):
        relist(event)
