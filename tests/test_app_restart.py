"""The real app in a subprocess: killed with jobs in flight, started again, every job finishes once."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import form

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = ["kie", "fluxapi", "runapi", "apixo", "bfl"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"the app did not start:\n{log.read_text()[-2000:]}")


def jobs(data: Path) -> list[tuple[str, str | None, str]]:
    with sqlite3.connect(data / "history.sqlite3") as db:
        return db.execute("SELECT provider, task_id, state FROM jobs").fetchall()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.Error:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_KEY", "_TOKEN", "_BASE_URL"))}
    env.update(
        PLAYGROUND_DATA_DIR=str(tmp_path / "data"),
        PLAYGROUND_OUT_DIR=str(tmp_path / "out"),
        GRADIO_SERVER_PORT=str(free_port()),
        PLAYGROUND_SANDBOX_PORT=str(free_port()),
        SANDBOX_JOB_SECONDS="6",
        PLAYGROUND_POLL_INTERVAL_S="0.25",  # these tests are about restarts, not about the learned schedule
        GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
        PLAYGROUND_BROWSER_SECRET="restart-test",
    )
    return env


def test_a_killed_app_resumes_its_five_jobs_on_start_without_submitting_any_again(app_env, tmp_path):
    from gradio_client import Client

    data, log = Path(app_env["PLAYGROUND_DATA_DIR"]), tmp_path / "app.log"
    app = start_app(app_env, log)
    try:
        client = Client(f"http://127.0.0.1:{app_env['GRADIO_SERVER_PORT']}/", verbose=False, download_files=False)
        client.submit(*form("a lighthouse at dawn", PROVIDERS), api_name="/generate")
        wait_for(lambda: len([j for j in jobs(data) if j[1]]) == 5, 30, "five task ids")
    finally:
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()
    assert all(state != "succeeded" for _, _, state in jobs(data)), "jobs finished before the kill: make them longer"

    app = start_app(app_env, log)
    try:
        wait_for(lambda: [s for _, _, s in jobs(data)] == ["succeeded"] * 5, 60, "the resumed jobs")
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(timeout=10)
    creates = [json.loads(line) for line in (data / "sandbox" / "requests.jsonl").read_text().splitlines()]
    assert len([r for r in creates if r["stage"] == "create"]) == 5
    with sqlite3.connect(data / "history.sqlite3") as db:
        paths = [row[0] for row in db.execute("SELECT result_path FROM jobs")]
    assert all(Path(p).is_file() for p in paths)


def test_with_public_base_url_at_its_own_address_the_app_finishes_jobs_through_callbacks(app_env, tmp_path):
    from gradio_client import Client

    port = app_env["GRADIO_SERVER_PORT"]
    app_env.update(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", SANDBOX_JOB_SECONDS="1")
    data = Path(app_env["PLAYGROUND_DATA_DIR"])
    app = start_app(app_env, tmp_path / "app.log")
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        client.submit(*form("a lighthouse at dawn", ["kie", "runapi", "bfl", "fal", "replicate"]), api_name="/generate")
        wait_for(lambda: [s for _, _, s in jobs(data)] == ["succeeded"] * 5, 30, "the callbacks")
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(timeout=10)
    requests = [json.loads(line) for line in (data / "sandbox" / "requests.jsonl").read_text().splitlines()]
    reads = [r["provider"] for r in requests if r["stage"] == "status"]
    assert reads == ["kie"], "callbacks signed whole need no status read; KIE's (ids and time only) need one"
