"""Votes are kept in the history file: a vote cast in the running app is on the board of a new app started on
the same data dir (a new store connection, a new arena: nothing carried over in memory)."""

from __future__ import annotations

import re

import httpx
from gradio_client import Client

from playground.history import SqliteHistory
from playground.service import GenerationService
from tests.ui.conftest import BROWSER_SECRET, KEEPALIVE_S, OWNER, RunningApp, _free_port
from tests.ui.test_arena_client import arena_form


def test_a_vote_cast_in_the_app_counts_on_the_board_of_a_new_app_on_the_same_data(ui_app: RunningApp):
    from playground.ui.runtime import build_page, launch

    client = Client(ui_app.url, verbose=False, download_files=False)
    form = arena_form("a lighthouse at dawn", model="flux-kontext-max")
    *_, (status, view, _) = list(client.submit(*form, api_name="/arena_start"))
    assert "/arena/image/" in view, status
    client.predict(OWNER, api_name="/arena_seen")  # what the page sends once both images have loaded
    status, _, reveal = client.predict(OWNER, api_name="/arena_vote_A")
    assert status.startswith("✔ Vote recorded"), status
    expected, _ = client.predict("t2i", "same-model", api_name="/arena_board")

    history = SqliteHistory.open(ui_app.service.settings.data_dir)
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))
    service = GenerationService(ui_app.service.settings, transport=transport, history=history)
    page = build_page(service, share=False, environ={"PLAYGROUND_BROWSER_SECRET": BROWSER_SECRET})
    _, url, _ = launch(page, server_name="127.0.0.1", server_port=_free_port(), quiet=True)
    try:
        rows, note = Client(url, verbose=False, download_files=False).predict(
            "t2i", "same-model", api_name="/arena_board"
        )
    finally:
        page.demo.close()
        history.close()
    assert rows["data"] == expected["data"] and "votes" in note, "the new app shows the same board"
    revealed = re.findall(r"- \*\*[A-D]\*\*: \*\*(.+?)\*\*", reveal)
    on_board = [row[1] for row in rows["data"] if row[1]]
    assert len(revealed) == 2 and set(revealed) <= set(on_board), (revealed, on_board)
