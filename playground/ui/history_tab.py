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
from playground.ui.page import PageParts
from playground.ui.panels import PANEL_SLOTS, PanelUI, build_panel, grid_component, results_header

ANY = ("any", "")
OUTCOME_WORDS = {"succeeded": "all done", "failed": "failed", "mixed": "some failed", "stopped": "stopped"}
HISTORY_OFF = "History is off in this app: runs are not kept, so there is nothing to list."


@dataclass
class HistoryUI:
    """The History tab's components."""

    query: gr.Textbox
    choices: list[gr.Dropdown]  # provider, model, outcome
    refresh: gr.Button
    table: gr.HTML
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


def build_history_tab(page: PageParts) -> HistoryUI | None:
    """The History tab (a gr.Tab of its own), wired; None, with a note, when the app keeps no history."""
    history = HistoryHandlers(page.handlers)
    with gr.Tab("History", id="history") as tab:
        ui = _layout(history)
    if ui is not None:
        states = dict(keys_state=page.keys_state, owner_state=page.owner_state)
        wire_history(page.demo, ui, history, tab=tab, runs_elsewhere=page.runs, **states)
    page.tabs["history"] = ui
    return ui


def _layout(history: HistoryHandlers) -> HistoryUI | None:
    if history.store is None:
        gr.Markdown(HISTORY_OFF, elem_id="history-off")
        return None
    query, choices = _filters(history)
    with gr.Row(equal_height=True):
        note = gr.Markdown(elem_id="history-note", label="history note")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=110, elem_id="history-refresh")
    table = gr.HTML(
        label="history runs",
        elem_id="history-runs",
        js_on_load="(function go(){ if (window.kx) window.kx.runs(element, trigger); else setTimeout(go, 30); })();",
    )
    with gr.Accordion("Open a run by its id", open=False, elem_id="history-by-id"):
        with gr.Row(equal_height=True):
            run_id = gr.Textbox(
                label="Run id",
                show_label=False,
                placeholder="a run id, from the list or from a download",
                scale=2,
                elem_id="history-run-id",
            )
            opened = gr.Button("Open", scale=1, elem_id="history-open")
    run = gr.Markdown(elem_id="history-run", label="history run")
    with gr.Row(equal_height=True):
        rerun = gr.Button("Re-run", variant="primary", scale=1, visible=False, elem_id="history-rerun")
        resume = gr.Button("Resume waiting", scale=1, visible=False, elem_id="history-resume")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="history-stop")
    with gr.Column(elem_id="history-results", elem_classes="kx-results"):
        message, summary, bundle, _ = results_header("history", with_resume=False)
        grid = grid_component("history")
        with gr.Row(equal_height=False, elem_id="history-panels"):
            specs = history.handlers.specs
            panels = [build_panel("history", key, specs[key[0]].label) for key in history.handlers.keys]
    head: dict[str, Component] = {
        "run_id": run_id,
        "run": run,
        "message": message,
        "summary": summary,
        "grid": grid,
        "bundle": bundle,
        "rerun": rerun,
        "resume": resume,
    }
    return HistoryUI(query, choices, refresh, table, note, run_id, opened, rerun, resume, stop, head, panels)


def _filters(history: HistoryHandlers) -> tuple[gr.Textbox, list[gr.Dropdown]]:
    """Search box, and the provider, model and outcome filters."""
    providers = [ANY] + [(spec.label, name) for name, spec in history.handlers.specs.items()]
    with gr.Row(equal_height=True):
        query = gr.Textbox(
            label="Search prompts",
            placeholder="words from the prompt",
            scale=3,
            min_width=200,
            elem_id="history-query",
        )
        provider = gr.Dropdown(
            providers, value="", label="Provider", scale=1, min_width=140, elem_id="history-provider"
        )
        models = [ANY] + [(model_short(m), m) for m in MODELS]
        model = gr.Dropdown(models, value="", label="Model", scale=1, min_width=110, elem_id="history-model")
        outcomes = [ANY] + [(OUTCOME_WORDS.get(o, o), o) for o in OUTCOMES]
        outcome = gr.Dropdown(outcomes, value="", label="Outcome", scale=1, min_width=140, elem_id="history-outcome")
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

    triggers: list[Any] = [ui.refresh.click, ui.query.change, tab.select, *[c.change for c in ui.choices]]
    gr.on(
        triggers,
        history.list_runs,
        list_inputs,
        list_outputs,
        api_name="history",
        show_progress="hidden",
        trigger_mode="always_last",  # typing in the search box answers at once, with the last word typed
    )
    relist(demo.load(history.ensure_owner, owner_state, owner_state, api_visibility="private"))
    for run in runs_elsewhere:
        relist(run)
    outputs = ui.outputs()
    summary: list[Any] = [ui.head["summary"]]
    picked = ui.table.select(history.pick, outputs=ui.run_id, api_visibility="private")
    picked.then(
        history.open_run,
        [ui.run_id, owner_state],
        outputs,
        api_visibility="private",
        show_progress_on=summary,
        js=SCROLL_TO_RUN,
    )
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
    grid: gr.HTML = ui.head["grid"]  # type: ignore[assignment]
    resume_clicks = [ui.resume.click, grid.select]
    rerun = ui.rerun.click(
        history.rerun, acting, outputs, api_name="history_rerun", concurrency_limit=None, show_progress_on=summary
    )
    resume = gr.on(
        resume_clicks,
        history.resume,
        acting,
        outputs,
        api_name="history_resume",
        concurrency_limit=None,
        show_progress_on=summary,
    )
    stop = ui.stop.click(history.stop, api_visibility="private", concurrency_limit=None, show_progress="hidden")
    for event in (rerun, resume, stop):
        relist(event)


SCROLL_TO_RUN = "(...args) => { window.kx && window.kx.show('history-run'); return args; }"
