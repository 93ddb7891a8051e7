"""The Providers tab: each provider and model's figures across the recorded runs, a latency chart, a CSV.

The numbers are playground.stats's, the same as ``python -m playground stats``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd  # type: ignore[import-untyped]  # gradio's own dependency; its plots take DataFrames

from playground.service import GenerationService
from playground.stats import COLUMNS, NO_RUNS, TargetStats, as_csv, provider_stats, table_row

MODE_CHOICES = [("text-to-image and edits", ""), ("text-to-image", "t2i"), ("edits", "edit")]
WINDOW_CHOICES = [("all runs", ""), ("last day", "1"), ("last 7 days", "7"), ("last 30 days", "30")]
EXPORTS = Path(tempfile.gettempdir()) / "playground-exports"
HELP = (
    "Every finished job in this playground's history, per provider and model. Latency is measured the same way "
    "for every provider (from sending the create to seeing the job done); **Uncertainty** is, on average, how "
    "much earlier a job may have finished than we saw it (the time between two status reads). Rows with few "
    "jobs say so."
)


class ProvidersHandlers:
    """The tab's one handler: figures for a mode and a time window."""

    def __init__(self, service: GenerationService) -> None:
        self.service = service

    async def show(self, mode: str, days: str) -> tuple[Any, Any, str, Any]:
        """(table, chart data, note, CSV file) for the chosen mode ('' any, t2i, edit) and window ('' all)."""
        history = self.service.history
        rows = (
            []
            if history is None
            else await provider_stats(
                history, self.service.specs, mode=mode or None, since_days=float(days) if days else None
            )
        )
        if not rows:
            return _table([]), _chart([]), NO_RUNS, gr.update(value=None, visible=False)
        return _table(rows), _chart(rows), _note(rows), gr.update(value=_export(rows), visible=True)


def _table(rows: list[TargetStats]) -> dict[str, Any]:
    return {"headers": [title for _, title in COLUMNS], "data": [table_row(row) for row in rows]}


def _chart(rows: list[TargetStats]) -> pd.DataFrame:
    points = [
        {
            "latency (s)": seconds,
            "job": f"{row.label} · {row.model.removeprefix('flux-kontext-')}",
            "provider": row.label,
        }
        for row in rows
        for seconds in row.latencies_s
    ]
    return pd.DataFrame(points, columns=["latency (s)", "job", "provider"])


def _note(rows: list[TargetStats]) -> str:
    jobs = sum(row.jobs for row in rows)
    return f"{jobs} finished job{'s' if jobs != 1 else ''} over {len(rows)} provider and model pairs."


def _export(rows: list[TargetStats]) -> str:
    EXPORTS.mkdir(parents=True, exist_ok=True)
    path = EXPORTS / f"providers-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}.csv"
    path.write_text(as_csv(rows))
    return str(path)


@dataclass
class ProvidersUI:
    mode: gr.Radio
    days: gr.Dropdown
    refresh: gr.Button
    note: gr.Markdown
    table: gr.Dataframe
    chart: gr.ScatterPlot
    export: gr.DownloadButton


def build_providers_tab(handlers: ProvidersHandlers, tab: gr.Tab) -> ProvidersUI:
    """The tab's content (inside its gr.Tab), wired: it fills when the tab is opened or a filter changes."""
    gr.Markdown(HELP)
    with gr.Row(equal_height=True):
        mode = gr.Radio(MODE_CHOICES, value="", label="Runs", scale=2, elem_id="providers-mode")
        days = gr.Dropdown(WINDOW_CHOICES, value="", label="When", scale=1, elem_id="providers-window")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=110, elem_id="providers-refresh")
    note = gr.Markdown(elem_id="providers-note")
    table = gr.Dataframe(
        headers=[title for _, title in COLUMNS],
        interactive=False,
        wrap=True,
        label="providers",
        show_label=False,
        elem_id="providers-table",
    )
    chart = gr.ScatterPlot(
        x="latency (s)",
        y="job",
        color="provider",
        title="Latency of every finished job",
        height=360,
        elem_id="providers-chart",
    )
    export = gr.DownloadButton("Export CSV", visible=False, size="sm", elem_id="providers-export")
    ui = ProvidersUI(mode, days, refresh, note, table, chart, export)
    triggers: list[Any] = [tab.select, refresh.click, mode.change, days.change]
    gr.on(triggers, handlers.show, [mode, days], [table, chart, note, export], api_name="providers")
    return ui
