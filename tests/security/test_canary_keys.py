"""Acceptance 2: every provider key, every signing secret and every visitor key set to a unique canary; each
provider answers 401 repeating the key it was given; afterwards no canary is anywhere: stdout, stderr, logs,
the database, output files, served HTML/JS, /config, the API info, what the page was sent, curl snippets.

(The browser's own storage of a visitor's keys is test_02's: what it keeps opens nothing.)"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import httpx

from playground.cli import main
from playground.providers import REGISTRY
from playground.sandbox.server import base_urls
from playground.settings import Settings
from tests.security.conftest import ROOT, updates
from tests.ui.conftest import form

EXAMPLE = ROOT / "playground" / "ui" / "assets" / "example-input.png"
VISITOR = {spec.key_env: f"canary{secrets.token_hex(10)}" for spec in REGISTRY.values()}


def every_create_answers_401(sandbox) -> None:
    for name in REGISTRY:
        sandbox.state.inject(name, "create", "401")  # "Invalid API key: <the key it was given>"


def run_the_cli(keyed_app, tmp_path: Path, capfd) -> tuple[str, str]:
    """The CLI with the same canary keys (from its environment): every provider, one edit; then the run as history
    shows it."""
    every_create_answers_401(keyed_app.sandbox)
    env = keyed_app.keys | base_urls(keyed_app.sandbox.url)
    env |= {"PLAYGROUND_DATA_DIR": str(tmp_path / "data"), "PLAYGROUND_OUT_DIR": str(tmp_path / "out")}
    image = f"{keyed_app.sandbox.url}/files/{keyed_app.sandbox.state.add_file(EXAMPLE.read_bytes(), 'image/png')}"
    providers = [arg for name in REGISTRY for arg in ("--provider", name)]
    capfd.readouterr()
    main(["generate", *providers, "--prompt", "x", "--image", image, "--json"], settings=Settings.from_env(env))
    out, err = capfd.readouterr()
    run_id = json.loads(out.splitlines()[0])["run_id"]
    main(["history", "show", run_id, "--json"], settings=Settings.from_env(env))
    shown, err2 = capfd.readouterr()
    return out + shown, err + err2


def every_file(*folders: Path) -> str:
    """The bytes of every file under ``folders`` (databases and their WAL, images, hosted inputs), as text."""
    return "".join(p.read_bytes().decode("latin-1") for f in folders if f.exists() for p in f.rglob("*") if p.is_file())


def test_no_canary_is_anywhere_after_providers_echo_every_key(keyed_app, tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    image = f"{keyed_app.sandbox.url}/files/{keyed_app.sandbox.state.add_file(EXAMPLE.read_bytes(), 'image/png')}"
    edit = form("make it snow", list(REGISTRY), image=None, image_url=image)
    # The server's keys: every provider echoing its key in a 401; then three succeeding, so that their curl snippets
    # and what was sent (BFL's webhook_secret included) are shown too.
    every_create_answers_401(keyed_app.sandbox)
    echoed = json.dumps(updates(keyed_app.url, edit, "/edit")[1])
    assert echoed.count("Invalid API key: [redacted]") >= len(REGISTRY), "every provider must have echoed a key"
    shown = form("make it snow", ["kie", "bfl", "fal"], image=None, image_url=image)  # Bearer, x-key, Key
    succeeded = json.dumps(updates(keyed_app.url, shown, "/edit")[1])
    assert succeeded.count("curl -X POST") >= 3 and "$BFL_WEBHOOK_SECRET" in succeeded
    # A visitor's own keys (as the page sends them, or an API client), echoed back too.
    every_create_answers_401(keyed_app.sandbox)
    theirs = form("make it snow", list(REGISTRY), image=None, image_url=image, keys={"v": 1, "keys": VISITOR})
    visitor = json.dumps(updates(keyed_app.url, theirs, "/edit")[1])
    assert visitor.count("Invalid API key: [redacted]") >= len(REGISTRY)
    app_out, app_err = capfd.readouterr()

    cli_out, cli_err = run_the_cli(keyed_app, tmp_path, capfd)
    assert "Invalid API key: [redacted]" in cli_out

    served = [httpx.get(f"{keyed_app.url}{path}", timeout=30).text for path in ("", "config", "gradio_api/info")]
    places = {
        "the page's streamed updates and curl snippets": echoed + succeeded + visitor,
        "served HTML, /config, API info": "".join(served),
        "the app's stdout and stderr": app_out + app_err,
        "the app's log, as its console shows it": keyed_app.log.getvalue(),
        "every log record, before any handler": caplog.text,
        "the app's database, outputs and hosted inputs": every_file(keyed_app.data_dir, keyed_app.out_dir),
        "the CLI's stdout and history": cli_out,
        "the CLI's stderr": cli_err,
        "the CLI's database and outputs": every_file(tmp_path),
    }
    canaries = {**keyed_app.keys, **VISITOR}
    found = {(place, name) for place, text in places.items() for name, value in canaries.items() if value in text}
    assert not found, sorted(found)
