"""Finding 3: a key a provider echoed (a 401 body repeating it) reached the CLI output, the page and history."""

from __future__ import annotations

import logging
import sqlite3

from playground.cli import main
from playground.sandbox.server import base_urls
from playground.settings import Settings
from tests.security.conftest import updates
from tests.ui.conftest import form

SERVER_KEY = "canary-server-kie-key-51aa2b"
VISITOR_KEY = "canary-visitor-kie-key-0c93e4"


def database_text(data_dir) -> str:
    """Every text the history database keeps (jobs and their state changes), as one string."""
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        rows = db.execute("SELECT * FROM jobs").fetchall() + db.execute("SELECT * FROM job_states").fetchall()
    return repr(rows)


def test_a_key_the_provider_echoes_is_in_no_cli_output_and_not_in_history(sandbox, tmp_path, capsys, caplog):
    sandbox.state.inject("kie", "create", "401")  # answers "Invalid API key: <the key it was given>"
    settings = Settings(
        values=base_urls(sandbox.url),
        secrets={"KIE_API_KEY": SERVER_KEY},
        data_dir=tmp_path / "data",
        out_dir=tmp_path / "out",
        poll_interval_s=0.05,
    )
    caplog.set_level(logging.DEBUG)
    assert main(["generate", "--provider", "kie", "--prompt", "a fox", "--json"], settings=settings) == 1
    out, err = capsys.readouterr()
    assert "Invalid API key: [redacted]" in out, out  # the provider's sentence, minus the key
    run_id = out.split('"run_id": "')[1].split('"')[0]
    assert main(["history", "show", run_id], settings=settings) == 0
    shown, err2 = capsys.readouterr()
    for text in (out, err, shown, err2, caplog.text, database_text(tmp_path / "data")):
        assert SERVER_KEY not in text


def test_a_visitors_key_echoed_back_is_not_on_the_page_and_not_in_history(shared_app, caplog):
    shared_app.sandbox.state.inject("kie", "create", "401")
    caplog.set_level(logging.DEBUG)
    keys = {"v": 1, "keys": {"KIE_API_KEY": VISITOR_KEY}}  # an API client sending its own key
    outputs, runs = updates(shared_app.url, form("a fox", ["kie"], keys=keys))
    status = [outputs.get(u, "status kie flux-kontext-pro") for u in runs]
    assert any("Invalid API key: [redacted]" in str(s) for s in status), status
    assert VISITOR_KEY not in str(runs)
    assert VISITOR_KEY not in database_text(shared_app.data_dir)
    assert VISITOR_KEY not in caplog.text
