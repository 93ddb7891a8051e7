"""Two real app processes on one PostgreSQL and one sandbox: the callback goes to B, A is killed, B takes over.

The sandbox runs in this test process (so its record of creates, status reads and callbacks can be read);
both replicas reach it through PLAYGROUND_SANDBOX_URL. Providers call back to B (A's PUBLIC_BASE_URL is B's
address, as a load balancer could route it). Leases are short (PLAYGROUND_LEASE_S=2) so a takeover is quick.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from playground.sandbox.core import SandboxState
from playground.sandbox.server import SandboxServer
from tests.test_app_restart import ROOT, free_port

LEASE_S = 2.0
TAKEOVER_MARGIN_S = 10.0  # the acceptance bound: the job is finished within lease + 10 s of the kill


def launch(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"the app at {url} did not start:\n{log.read_text()[-3000:]}")


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def job_row(url: str, prompt: str) -> dict[str, object] | None:
    with psycopg.connect(url) as db:
        row = db.execute(
            """SELECT j.task_id, j.state, j.lease_owner, j.result_path FROM jobs j JOIN runs r USING (run_id)
            WHERE r.prompt = %s""",
            (prompt,),
        ).fetchone()
    return dict(zip(("task_id", "state", "owner", "result_path"), row, strict=True)) if row else None


def deliveries(url: str, task_id: str) -> int:
    with psycopg.connect(url) as db:
        return int(db.execute("SELECT COUNT(*) FROM deliveries WHERE task_id = %s", (task_id,)).fetchone()[0])


@pytest.fixture
def replicas(pg_url, tmp_path):
    """A shared sandbox, then replicas A and B (both started at once); yields what the test needs."""
    sandbox = SandboxServer(SandboxState(job_seconds=1.0)).start()
    ports = {"A": free_port(), "B": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base = {k: v for k, v in os.environ.items() if not k.endswith(("_KEY", "_TOKEN", "_BASE_URL", "_SECRET"))}
    procs, logs = {}, {}
    for name in ("A", "B"):
        env = base | {
            "PLAYGROUND_DATABASE_URL": pg_url,
            "PLAYGROUND_SANDBOX_URL": sandbox.url,
            "PLAYGROUND_LEASE_S": str(LEASE_S),
            "PLAYGROUND_DATA_DIR": str(tmp_path / name / "data"),
            "PLAYGROUND_OUT_DIR": str(tmp_path / name / "out"),
            "PLAYGROUND_BROWSER_SECRET": "replicas-test",
            "GRADIO_SERVER_PORT": str(ports[name]),
            "GRADIO_TEMP_DIR": str(tmp_path / name / "gradio"),
            "PUBLIC_BASE_URL": urls["B"],  # providers call back to B, whoever submitted
        }
        logs[name] = tmp_path / f"{name}.log"
        procs[name] = launch(env, logs[name])
    try:
        for name in ("A", "B"):
            wait_until_serving(urls[name] + "/", procs[name], logs[name])
        yield sandbox, urls, procs, logs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
        sandbox.stop()


def submit(url: str, prompt: str):
    from gradio_client import Client

    return Client(url + "/", verbose=False, download_files=False).submit(
        prompt=prompt, providers=["runapi"], api_name="/compare"
    )


def test_a_callback_to_b_finishes_as_job_and_after_a_is_killed_b_finishes_its_job_with_one_create(replicas, pg_url):
    sandbox, urls, procs, logs = replicas
    a, b = procs["A"], procs["B"]

    # 1. A submits; the signed callback reaches B, which keeps it and wakes A through NOTIFY.
    first = "a lighthouse, called back to B"
    answer = json.loads(submit(urls["A"], first).result(timeout=60))
    assert [job["state"] for job in answer["jobs"]] == ["succeeded"], answer
    done = job_row(pg_url, first)
    assert done is not None and done["state"] == "succeeded"
    assert f"-{a.pid}-" in str(done["owner"]), "A, the owner, recorded the end of its job"
    assert deliveries(pg_url, str(done["task_id"])) == 1, "the callback went through B and the store"
    reads = [r for r in sandbox.state.requests if r.stage == "status"]
    assert reads == [], "A read the status instead of being woken by B's notification"
    answers = lambda: [code for _, job_id, code in sandbox.state.callbacks_sent if job_id == done["task_id"]]  # noqa: E731
    wait_for(lambda: answers() != [], 5, "the sandbox to note B's answer (it may come just after the job ended)")
    assert answers() == [200]

    # 2. A submits a longer job and dies (SIGKILL) while waiting; B takes it over when A's lease runs out.
    sandbox.state.job_seconds = 4.0  # long enough to kill A while it waits, short enough for a quick test
    second = "a lighthouse, finished by B"
    submit(urls["A"], second)
    running = wait_for(lambda: (row := job_row(pg_url, second)) and row["task_id"] and row, 30, "A to submit")
    assert running["state"] == "running"
    os.killpg(a.pid, signal.SIGKILL)
    a.wait(timeout=10)
    finished = wait_for(
        lambda: (row := job_row(pg_url, second)) and row["state"] == "succeeded" and row,
        LEASE_S + TAKEOVER_MARGIN_S,
        "B to finish the job of the killed replica",
    )
    assert f"-{b.pid}-" in str(finished["owner"]), f"not taken over by B:\n{logs['B'].read_text()[-2000:]}"
    creates = [job for job in sandbox.state.jobs.values() if job.prompt == second]
    assert len(creates) == 1, "the job was submitted again"
    assert finished["task_id"] == creates[0].id
    assert Path(str(finished["result_path"])).is_file()
