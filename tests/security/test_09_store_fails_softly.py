"""Finding 9 (and acceptance 3): the store failed hard: an outside write lock froze every visitor and left runs
at "queued" with a raw "database is locked"; a corrupt file or a data dir that is a file gave tracebacks; six
CLI runs at once on a fresh data dir crashed two with "table runs already exists"."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import httpx
import pytest

from playground.history.sqlite_schema import SCHEMA_VERSION
from tests.security.conftest import ROOT, last, updates
from tests.ui.conftest import form

HOLD = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); db.execute('BEGIN IMMEDIATE');"
HOLD += " print('locked', flush=True); sys.stdin.read(); db.execute('ROLLBACK')"


@pytest.fixture
def locked(shared_app):
    """Another process holding a write lock on the app's history file until the test lets go."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(shared_app.data_dir / "history.sqlite3")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    yield holder
    holder.communicate("", timeout=10)


def test_while_another_program_holds_the_lock_the_page_answers_and_a_run_ends_with_a_sentence(shared_app, locked):
    assert httpx.get(shared_app.url, timeout=30).status_code == 200
    assert httpx.get(f"{shared_app.url}gradio_api/info", timeout=30).status_code == 200
    sent_before = shared_app.sandbox.state.count("kie", "create")
    outputs, runs = updates(shared_app.url, form("a fox", ["kie"]))
    message = last(outputs, runs, "message")
    assert "history.sqlite3 is locked by another program" in message and "nothing was sent" in message, message
    assert "database is locked" not in str(runs)
    assert locked.poll() is None, "the lock was still held while all this happened"
    assert shared_app.sandbox.state.count("kie", "create") == sent_before


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda data: (data.mkdir(), (data / "history.sqlite3").write_bytes(b"not a database" * 100)), "not a usable"),
        (lambda data: data.write_text("a file where the data folder should be"), "is a file, not a folder"),
    ],
    ids=["corrupt-file", "data-dir-is-a-file"],
)
def test_an_unusable_store_is_one_sentence_at_start_naming_the_file(spoil, said, tmp_path, monkeypatch, capsys):
    import app

    data = tmp_path / "data"
    spoil(data)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data))
    monkeypatch.setattr(app, "load_dotenv", lambda: None)  # never the developer's .env in a test
    with pytest.raises(SystemExit) as stopped:
        app.main(["--sandbox"])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and said in err and str(data) in err, err
    assert "Traceback" not in out + err


# Each CLI process imports first, then waits at a barrier: all six open the fresh store in the same instant.
AT_ONCE = (
    "import os, sys, time; from playground.cli import main; print('ready', flush=True); "
    "[time.sleep(0.005) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]; sys.exit(main(['history']))"
)


def test_six_cli_runs_at_once_on_a_fresh_data_dir_all_succeed(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYGROUND_", "SANDBOX_"))}
    env |= {"PLAYGROUND_DATA_DIR": str(tmp_path / "data")}
    go = tmp_path / "go"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", AT_ONCE, str(go)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(6)
    ]
    for run in runs:
        assert run.stdout is not None and run.stdout.readline().strip() == b"ready"
    go.touch()
    results = [(run.wait(timeout=60), run.stderr.read() if run.stderr else b"") for run in runs]
    assert [code for code, _ in results] == [0] * 6, results
    with sqlite3.connect(tmp_path / "data" / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
