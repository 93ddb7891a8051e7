"""The real app in a subprocess: a vote cast through the page's endpoints is still counted after a kill and a start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_app_restart import ROOT, free_port, start_app

OWNER = "restart-owner-0123456789ab"
ROUND = ["t2i", "same-model", "flux-kontext-pro", 2, "a lighthouse at dawn", None, "", "", "7"]


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_KEY", "_TOKEN", "_BASE_URL"))}
    env.update(
        PLAYGROUND_DATA_DIR=str(tmp_path / "data"),
        PLAYGROUND_OUT_DIR=str(tmp_path / "out"),
        GRADIO_SERVER_PORT=str(free_port()),
        PLAYGROUND_SANDBOX_PORT=str(free_port()),
        SANDBOX_JOB_SECONDS="0.3",
        GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
        PLAYGROUND_BROWSER_SECRET="arena-restart-test",
    )
    return env


def cli_board(data: Path) -> list[dict]:
    env = {**os.environ, "PLAYGROUND_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "playground", "leaderboard", "--json", "--same-model"]
    return json.loads(subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)


def test_a_vote_survives_a_killed_app_and_counts_on_the_board_after_the_start(app_env, tmp_path):
    from gradio_client import Client

    url, data, log = (
        f"http://127.0.0.1:{app_env['GRADIO_SERVER_PORT']}/",
        Path(app_env["PLAYGROUND_DATA_DIR"]),
        tmp_path / "log",
    )
    app = start_app(app_env, log)
    try:
        client = Client(url, verbose=False, download_files=False)
        *_, (status, view, _) = list(client.submit(*ROUND, {"v": 1, "keys": {}}, OWNER, api_name="/arena_start"))
        assert "/arena/image/" in view, status
        client.predict(OWNER, api_name="/arena_seen")  # what the page sends once both images have loaded
        status, _, reveal = client.predict(OWNER, api_name="/arena_vote_A")
        assert status.startswith("✔ Vote recorded"), status
    finally:
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()

    app = start_app(app_env, log)
    try:
        rows, _ = Client(url, verbose=False, download_files=False).predict("t2i", "same-model", api_name="/arena_board")
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(timeout=10)
    shown = {row[1]: row for row in rows["data"] if row[1]}
    board = {row["label"]: row for row in cli_board(data)}
    assert set(shown) == set(board) and len(board) == 2
    assert sorted(row["win_rate"] for row in board.values()) == [0.0, 1.0]
    assert all(shown[label][4] == "1" and board[label]["votes"] == 1 for label in board)
    assert all(label in reveal for label in board), "the hosts revealed are the ones on the board"
