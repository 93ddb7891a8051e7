"""One playground app on the sandbox for the UI tests, and helpers to read its streamed outputs."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from playground.history import SqliteHistory
from playground.sandbox.core import SandboxState
from playground.sandbox.server import SandboxServer, sandbox_settings
from playground.service import GenerationService
from playground.settings import Settings
from tests.conftest import SMALL_IMAGE_PX

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JOB_S = 0.5  # sandbox job length: long enough to see queued and running, short enough for a quick suite
BROWSER_SECRET = "test-browser-secret"
OWNER = "test-owner-0123456789abcdef"  # the browser id a client sends; the History tab lists by it when shared
KEEPALIVE_S = 2.0
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    # gradio 6.31 calls pandas options that pandas 3.1 deprecates; nothing the playground can change
    config.addinivalue_line("filterwarnings", "ignore::pandas.errors.Pandas4Warning")


@dataclass
class RunningApp:
    """The launched page and what the tests reach into."""

    url: str
    sandbox: SandboxServer
    service: GenerationService
    out_dir: Path
    page: Any  # runtime.Page (imported late: it imports gradio)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ui_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The playground in sandbox mode, launched in-process on a free port (temp files under a test folder)."""
    tmp = tmp_path_factory.mktemp("ui")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))
        from playground.ui.runtime import build_page, launch  # imports gradio: only when a UI test runs

        with SandboxServer(SandboxState(job_seconds=JOB_S, seed=1)) as sandbox:
            sandbox.state.image_px = SMALL_IMAGE_PX
            base = Settings(out_dir=tmp / "out", data_dir=tmp / "data", poll_interval_s=0.1, job_timeout_s=20)
            # httpx and uvicorn both keep idle connections 5 s: a POST on a connection the sandbox is closing
            # at that moment fails (and a create is never retried). Expiring ours sooner avoids the race.
            transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))
            history = SqliteHistory.open(base.data_dir)
            service = GenerationService(sandbox_settings(base, sandbox.url), transport=transport, history=history)
            page = build_page(service, share=False, environ={"PLAYGROUND_BROWSER_SECRET": BROWSER_SECRET})
            port = _free_port()
            _, url, _ = launch(page, server_name="127.0.0.1", server_port=port, quiet=True)
            try:
                yield RunningApp(url, sandbox, service, tmp / "out", page)
            finally:
                page.demo.close()
                history.close()


@pytest.fixture(autouse=True)
def fresh_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults, expected keys and job length set by one test never reach the next."""
    yield
    if "ui_app" in request.fixturenames:
        app: RunningApp = request.getfixturevalue("ui_app")
        state = app.sandbox.state
        state.keys, state.job_seconds = {}, JOB_S
        while any(state.take_fault(p, s) for p in app.service.specs for s in ("create", "status", "upload")):
            pass


class Outputs:
    """Reads one endpoint's streamed output tuples by component label ('status kie flux-kontext-pro')."""

    def __init__(self, client: Any, api_name: str) -> None:
        info = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
        self.labels = [r["label"] for r in info["returns"]]

    def get(self, values: tuple[Any, ...] | list[Any], label: str) -> Any:
        """The value shown for ``label`` in one update (None when the update leaves it unchanged)."""
        value = values[self.labels.index(label)]
        if isinstance(value, dict) and value.get("__type__") == "update":
            return value.get("value")
        return value


def form(prompt: str, providers: list[str], *, models: tuple[str, ...] = ("flux-kontext-pro",), **kw: Any) -> list[Any]:
    """The generate (or edit, given ``image``/``image_url``) endpoint's inputs by name, in the page's order
    (forms.FORM_FIELDS then STATE_FIELDS), with defaults for what a test does not set."""
    from playground.ui.forms import FORM_FIELDS, STATE_FIELDS

    if "image" in kw:
        kw["image_path"] = kw.pop("image")
    values = {
        "prompt": prompt,
        "providers": providers,
        "models": list(models),
        "aspect_ratio": "",
        "output_format": "jpeg",
        "seed": "",
        "same_seed": True,
        "randomize": False,
        "safety": "default",
        "upsampling": False,
        "translation": "default",
        "guidance": None,
        "image_path": None,
        "image_url": "",
        "keys": {"v": 1, "keys": {}},
        "owner": OWNER,
    } | kw
    kind = "edit" if "image_path" in kw or "image_url" in kw else "text"
    unknown = set(values) - set(FORM_FIELDS["edit"]) - set(STATE_FIELDS)
    assert not unknown, f"not a field of the form: {unknown}"
    return [values[name] for name in (*FORM_FIELDS[kind], *STATE_FIELDS)]
