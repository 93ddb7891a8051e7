"""The Arena tab's endpoints through gradio_client: bad inputs in one sentence, N-image picks, edit rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from tests.ui.conftest import OWNER, RunningApp

EXAMPLE = Path(__file__).resolve().parents[2] / "playground" / "ui" / "assets" / "example-input.png"
KEYS = {"v": 1, "keys": {}}


def arena_form(prompt: str, **kw: Any) -> list[Any]:
    """The arena_start inputs in the tab's order (ARENA_FIELDS, then the browser's keys and owner id)."""
    from playground.ui.arena_handlers import ARENA_FIELDS

    values = {
        "mode": "t2i",
        "pairing": "same-model",
        "model": "",
        "count": 2,
        "prompt": prompt,
        "image_path": None,
        "image_url": "",
        "aspect_ratio": "",
        "seed": "",
    } | kw
    return [values[name] for name in ARENA_FIELDS] + [KEYS, kw.get("owner", OWNER)]


def start(client: Client, prompt: str, **kw: Any) -> tuple[str, str, str]:
    """The last (status, round HTML, reveal) of one round."""
    return tuple(list(client.submit(*arena_form(prompt, **kw), api_name="/arena_start"))[-1])  # type: ignore[return-value]


@pytest.fixture
def client(ui_app: RunningApp) -> Client:
    return Client(ui_app.url, verbose=False, download_files=False)


@pytest.mark.parametrize(
    ("prompt", "fields", "sentence"),
    [
        ("   ", {}, "✘ Invalid prompt: the prompt is empty"),
        ("make it snow", {"mode": "edit"}, "✘ Add an input image for an edit round"),
        ("a fox", {"seed": "twelve"}, "✘ The seed must be a whole number"),
        ("a fox", {"owner": "not-an-id"}, "✘ This page is still starting (your browser has no visitor id yet)"),
    ],
)
def test_bad_input_is_one_sentence_and_starts_nothing(client, ui_app, prompt, fields, sentence):
    before = ui_app.sandbox.state.count(stage="create")
    status, view, _ = start(client, prompt, **fields)
    assert status.startswith(sentence) and "Traceback" not in status
    assert ui_app.sandbox.state.count(stage="create") == before


def test_a_vote_without_a_round_is_refused(client):
    status, _, reveal = client.predict(OWNER, api_name="/arena_vote_A")
    assert status.startswith("✘ This round is no longer open") and reveal == {"__type__": "update"}  # unchanged


def test_a_pick_among_four_any_targets_reveals_four_and_takes_no_tie(client):
    status, view, _ = start(client, "a fox on a hill", pairing="any", count=4)
    assert view.count("<img") == 4 and "pick the best" in status
    client.predict(OWNER, api_name="/arena_seen")
    refused, _, _ = client.predict(OWNER, api_name="/arena_vote_tie")
    assert refused.startswith("✘ 'tie' is not a choice in this round")
    status, _, reveal = client.predict(OWNER, api_name="/arena_vote_C")
    assert status.startswith("✔ Vote recorded: C is best")
    assert reveal.count("- **") == 4 and reveal.count("← your vote") == 1


def test_an_edit_round_shows_two_edited_images(client):
    status, view, _ = start(client, "make it a snowy evening", mode="edit", image_path=handle_file(str(EXAMPLE)))
    assert view.count("<img") == 2, status
    client.predict(OWNER, api_name="/arena_seen")
    status, _, reveal = client.predict(OWNER, api_name="/arena_vote_both_bad")
    assert status.startswith("✔ Vote recorded: both bad") and "FLUX.1 Kontext" in reveal
