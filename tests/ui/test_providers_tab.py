"""The Providers tab and ``python -m playground stats`` tell the same story about the same history."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from playground.cli import main
from playground.history import SqliteHistory
from playground.providers import REGISTRY
from playground.settings import Settings
from playground.stats import NO_RUNS, provider_stats
from playground.ui.providers_tab import ProvidersHandlers
from tests.ui.conftest import form
from tests.ui.test_history_tab import cached_client, stream


def test_the_tab_and_the_stats_command_agree_and_the_tab_draws_a_chart_and_exports_csv(ui_app, capsys):
    stream(ui_app, form("a fox for the board", ["kie", "fal"], models=("flux-kontext-pro", "flux-kontext-max")))
    table, chart, note, export = cached_client(ui_app).predict("", "", api_name="/providers")
    data_dir = ui_app.service.settings.data_dir
    assert main(["stats", "--json"], settings=Settings(data_dir=data_dir)) == 0
    rows = json.loads(capsys.readouterr().out)
    shown = {(row[0], row[1]): row for row in table["data"]}
    assert len(shown) == len(rows) and "finished job" in note
    for row in rows:
        tab = shown[(REGISTRY[row["provider"]].label, row["model"].removeprefix("flux-kontext-"))]
        assert tab[2] == row["jobs"] and tab[3] == f"{100 * row['success_rate']:.0f} %"
        shown_as = ["" if row[name] is None else row[name] for name in ("p50_s", "p95_s")]  # none finished: blank
        assert [tab[5], tab[6]] == shown_as
    points = chart["data"]
    assert chart["mark"] == "point" and chart["datatypes"]["job"] == "nominal"
    assert len(points) == sum(row["succeeded"] for row in rows), "one point per finished image"
    assert export["visible"] is True
    exported = list(csv.reader(io.StringIO(Path(export["value"]["path"]).read_text())))
    assert exported[0][0] == "Provider" and len(exported) == len(rows) + 1


def test_an_empty_history_says_how_to_get_some(tmp_path):
    class Service:
        history = SqliteHistory.open(tmp_path)
        specs = REGISTRY

    table, _chart, note, export = asyncio.run(ProvidersHandlers(Service()).show("", ""))
    assert table["data"] == [] and note == NO_RUNS and "--sandbox" in note
    assert asyncio.run(provider_stats(Service.history, REGISTRY)) == []
