"""What the security tests share: the real app as a shared page (in-process), loopback listeners, the CLI.

``shared_app`` is ``app.start`` with ``--sandbox --share`` as app.py runs it, except that Gradio is not asked for
a share link (a test must never publish itself): the page is built for strangers, its in-app sandbox guarded.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from playground.sandbox.server import LoopbackServer
from tests.conftest import SMALL_IMAGE_PX, png_bytes

ROOT = Path(__file__).resolve().parents[2]
APP_JOB_S = 0.5


def pytest_configure(config: pytest.Config) -> None:
    # gradio 6.31 calls pandas options that pandas 3.1 deprecates; nothing the playground can change
    config.addinivalue_line("filterwarnings", "ignore::pandas.errors.Pandas4Warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Listener:
    """A loopback server that records every request it gets and answers each with a small PNG.

    Stands for what a stranger must never reach through the app: a cloud metadata endpoint, an internal
    service, another origin that must never see a key.
    """

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def headers_seen(self) -> list[dict[str, str]]:
        return [hit["headers"] for hit in self.seen]


@pytest.fixture
def listener() -> Iterator[Listener]:
    hits: list[dict[str, Any]] = []

    async def record(request: Request) -> Response:
        hits.append({"path": request.url.path, "headers": dict(request.headers)})
        return Response(png_bytes(), media_type="image/png")

    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST", "PUT"])])
    with LoopbackServer(app) as server:
        yield Listener(server.url, hits)


@dataclass
class SharedApp:
    """The running app: where it is, its service and in-app sandbox, its folders."""

    url: str
    started: Any  # app.Started
    data_dir: Path
    out_dir: Path

    @property
    def service(self) -> Any:
        return self.started.service

    @property
    def sandbox(self) -> Any:
        return self.started.sandbox


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory, gradio_temp_dir: Path) -> Iterator[SharedApp]:
    """``python app.py --sandbox --share`` in this process (no share link asked for), on free ports."""
    tmp = tmp_path_factory.mktemp("shared")
    env = {
        "PLAYGROUND_DATA_DIR": str(tmp / "data"),
        "PLAYGROUND_OUT_DIR": str(tmp / "out"),
        "PLAYGROUND_SANDBOX_PORT": str(free_port()),
        "SANDBOX_JOB_SECONDS": str(APP_JOB_S),
        "PLAYGROUND_BROWSER_SECRET": "shared-app-browser-secret-3f9a",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        import app  # imports gradio: only when a security test needs the page

        options = dict(share=False, server_name="127.0.0.1", server_port=free_port())
        started = app.start(app.parse_args(["--sandbox", "--share"]), **options)
        for name in env:
            patch.delenv(name)  # read once at start, as app.py does
        try:
            yield SharedApp(started.local_url, started, tmp / "data", tmp / "out")
        finally:
            started.page.demo.close()
            if started.sandbox is not None:
                started.sandbox.stop()


_CLIENTS: dict[tuple[str, str], Any] = {}


def client(url: str, headers: dict[str, str] | None = None) -> Any:
    """A gradio_client for ``url`` (one per page and headers: making one reads the whole API)."""
    from gradio_client import Client

    key = (url, json.dumps(headers, sort_keys=True))
    if key not in _CLIENTS:
        _CLIENTS[key] = Client(url, verbose=False, download_files=False, headers=headers)
    return _CLIENTS[key]


def updates(
    url: str, args: list[Any], api_name: str = "/generate", headers: dict[str, str] | None = None
) -> tuple[Any, list[tuple[Any, ...]]]:
    """Every update of one run through gradio_client, and the outputs' labels to read them by."""
    from tests.ui.conftest import Outputs

    c = client(url, headers)
    outputs = Outputs(c, api_name)
    return outputs, [tuple(update) for update in c.submit(*args, api_name=api_name)]


def last(outputs: Any, runs: list[tuple[Any, ...]], label: str) -> Any:
    values = [v for u in runs if (v := outputs.get(u, label)) is not None]
    return values[-1] if values else None


def cli(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m playground ARGS`` in a subprocess (the real entry point, .env loading included)."""
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def wait_for(condition: Any, seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds (a state another process or thread reaches), or fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def canaries() -> dict[str, str]:
    """A unique canary for every key and secret a provider reads (the registry's), plus the browser secret."""
    from playground.providers import REGISTRY
    from playground.settings import is_secret_name

    names = {env for spec in REGISTRY.values() for env in spec.env_names if is_secret_name(env)}
    return {name: f"canary{secrets.token_hex(10)}" for name in sorted(names | {"PLAYGROUND_BROWSER_SECRET"})}


@dataclass
class KeyedApp:
    """The app with real keys (canaries) pointed at a sandbox, callbacks on; its log as its console would show it."""

    url: str
    started: Any  # app.Started
    data_dir: Path
    out_dir: Path
    sandbox: Any
    keys: dict[str, str]
    log: io.StringIO


@pytest.fixture(scope="session")
def gradio_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One upload folder for every app of this folder's tests: Gradio reads GRADIO_TEMP_DIR on every upload."""
    folder = tmp_path_factory.mktemp("gradio")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def keyed_app(tmp_path_factory: pytest.TempPathFactory, gradio_temp_dir: Path) -> Iterator[KeyedApp]:
    """``python app.py`` with every key and secret set to a canary (real-keys mode, not sandbox mode), its providers
    a sandbox on loopback, PUBLIC_BASE_URL its own address (so webhook secrets go out too), and
    GRADIO_SERVER_NAME=0.0.0.0 (the network may reach it; it binds loopback only here). In this process:
    ``app.start`` as app.py calls it, its log written through the redacting handler app.py installs."""
    from playground.redact import LogRedaction
    from playground.sandbox.core import SandboxState
    from playground.sandbox.server import SandboxServer, base_urls

    tmp = tmp_path_factory.mktemp("keyed")
    keys = canaries()
    port = free_port()
    log = io.StringIO()
    console = logging.StreamHandler(log)
    console.addFilter(LogRedaction())
    with SandboxServer(SandboxState(job_seconds=APP_JOB_S, seed=3)) as sandbox, pytest.MonkeyPatch.context() as patch:
        sandbox.state.image_px = SMALL_IMAGE_PX
        # KIE signs its callbacks with the app's (canary) key, as KIE would with the key the user set; a delivery
        # the app rejected would leave the job to the 15 s safety-net read.
        sandbox.state.signing_secrets["kie"] = keys["KIE_WEBHOOK_HMAC_KEY"]
        env = (
            keys
            | base_urls(sandbox.url)
            | {
                "PLAYGROUND_DATA_DIR": str(tmp / "data"),
                "PLAYGROUND_OUT_DIR": str(tmp / "out"),
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "PLAYGROUND_POLL_INTERVAL_S": "0.2",
                "GRADIO_SERVER_NAME": "0.0.0.0",
            }
        )
        for name, value in env.items():
            patch.setenv(name, value)
        import app

        logging.getLogger().addHandler(console)
        started = app.start(app.parse_args([]), server_name="127.0.0.1", server_port=port)
        for name in env:
            patch.delenv(name)  # read once at start, as app.py does; no later test sees them
        try:
            yield KeyedApp(started.local_url, started, tmp / "data", tmp / "out", sandbox, keys, log)
        finally:
            logging.getLogger().removeHandler(console)
            started.page.demo.close()


def rss_kb() -> int:
    """This process's resident memory (the apps of these tests serve from threads of it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Front:
    """A loopback server in front of another (a provider's stand-in) that passes every request through, except
    that ``redirect(request)`` may send it elsewhere (307) and ``rewrite(request, json)`` may change an answer."""

    def __init__(self, target: str, *, redirect: Any = None, rewrite: Any = None) -> None:
        import httpx

        async def forward(request: Request) -> Response:
            elsewhere = redirect(request) if redirect else None
            if elsewhere:
                return Response(status_code=307, headers={"location": elsewhere})
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.request(
                    request.method,
                    target + request.url.path,
                    params=request.query_params,
                    content=await request.body(),
                    headers=headers,
                )
            content = answer.content
            if rewrite and answer.headers.get("content-type", "").startswith("application/json"):
                content = json.dumps(rewrite(request, answer.json())).encode()
            return Response(content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))

        app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE"])])
        self.server = LoopbackServer(app)
        self.url = self.server.url

    def __enter__(self) -> Front:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
