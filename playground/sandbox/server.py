"""The sandbox server: every protocol mounted under /<provider>, files under /files, controls under /_sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from playground.errors import ConfigError
from playground.providers import REGISTRY
from playground.sandbox.core import SandboxState
from playground.settings import Settings, is_secret_name

SANDBOX_KEY = "sandbox-key"
MAX_JOB_SECONDS = 3600.0


def protocol(name: str) -> ModuleType:
    """The sandbox module that speaks provider ``name``'s protocol, as its registry entry names it.

    A module has build(state, name, label) -> Starlette and SANDBOX_SECRETS: env name -> value it signs with.
    """
    return importlib.import_module(f"playground.sandbox.{REGISTRY[name].sandbox}")


def build_app(state: SandboxState) -> Starlette:
    """One ASGI app serving every registered provider's protocol at /<provider>, plus files and controls."""
    routes: list[Route | Mount] = [
        Route("/files/{name}", _file(state)),
        Route("/_sandbox/requests", _requests(state)),
        Route("/_sandbox/faults", _faults(state), methods=["POST"]),
    ]
    for name, spec in REGISTRY.items():
        state.labels[name] = spec.label
        routes.append(Mount(f"/{name}", app=protocol(name).build(state, name, spec.label)))
    return Starlette(routes=routes)


def _file(state: SandboxState) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:  # async: from memory, no worker thread per download
        name = request.path_params["name"]
        found = state.files.get(name) or state.files.get(name.rsplit(".", 1)[0])
        if found is None:
            return Response("not found", status_code=404)
        return Response(found[0], media_type=found[1])

    return serve


def _requests(state: SandboxState) -> Callable[[Request], Awaitable[Response]]:
    async def listing(request: Request) -> Response:
        return JSONResponse([asdict(r) for r in state.requests])

    return listing


def _faults(state: SandboxState) -> Callable[[Request], Response]:
    async def configure(request: Request) -> Response:
        spec = (await request.json()).get("spec", "")
        try:
            state.configure(spec, providers=REGISTRY)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True})

    return configure  # type: ignore[return-value]


def base_urls(base_url: str) -> dict[str, str]:
    """Every *_BASE_URL a registered provider reads (its API and any other host, KIE's uploads say), pointed at
    its mount on the sandbox at ``base_url``."""
    urls: dict[str, str] = {}
    for name, spec in REGISTRY.items():
        mount = f"{base_url.rstrip('/')}/{name}"
        for env in (spec.base_url_env, *spec.extra_env):
            if env.endswith("_BASE_URL"):
                urls[env] = mount
    return urls


def sandbox_settings(settings: Settings, base_url: str, *, key: str = SANDBOX_KEY) -> Settings:
    """Settings that point every provider at the sandbox with sandbox keys; nothing else changes."""
    values = dict(settings.values) | base_urls(base_url)
    secrets = dict(settings.secrets)
    for name, spec in REGISTRY.items():
        secrets[spec.key_env] = SecretStr(key)
        signing = getattr(protocol(name), "SANDBOX_SECRETS", {})
        for env, value in signing.items():
            if env not in spec.extra_env:
                continue
            if is_secret_name(env):
                secrets[env] = SecretStr(value)
            else:
                values[env] = value
    # Polling is as with real keys (the learned policy): only the base URLs and keys differ.
    return settings.model_copy(update={"values": values, "secrets": secrets, "sandbox": True})


def state_from_env(environ: Mapping[str, str] | None = None, *, persist_dir: Path | None = None) -> SandboxState:
    """A sandbox state configured by SANDBOX_JOB_SECONDS, SANDBOX_FAULTS, SANDBOX_BIAS; kept under persist_dir.

    ConfigError with one sentence when a value is malformed; nothing is started then.
    """
    env = os.environ if environ is None else environ
    job_seconds = job_seconds_from(env.get("SANDBOX_JOB_SECONDS", "").strip())
    faults, bias = env.get("SANDBOX_FAULTS", ""), env.get("SANDBOX_BIAS", "")
    try:
        trial = SandboxState()  # both checked whole before any state is touched
        trial.configure(faults, providers=REGISTRY)
        trial.configure_bias(bias)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if persist_dir is not None:
        state = SandboxState.load(persist_dir, job_seconds=job_seconds)
    else:
        state = SandboxState(job_seconds=job_seconds)
    state.configure(faults, providers=REGISTRY)
    state.configure_bias(bias)
    return state


def job_seconds_from(raw: str) -> float | None:
    """SANDBOX_JOB_SECONDS as seconds (empty: each provider's typical time); ConfigError when it is not one."""
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"SANDBOX_JOB_SECONDS is {raw!r}, which is not a number of seconds (e.g. 2).") from None
    if not 0 <= seconds <= MAX_JOB_SECONDS or seconds != seconds:
        raise ConfigError(f"SANDBOX_JOB_SECONDS must be between 0 and {MAX_JOB_SECONDS:g} seconds, not {raw}.")
    return seconds


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, woken by ``stop()`` rather than noticing at its next 0.1 s tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: Callable[[], None] = lambda: None

    async def main_loop(self) -> None:  # uvicorn's loop (on_tick every 0.1 s), with a wake-up
        loop, woken = asyncio.get_running_loop(), asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(woken.set)

        self._wake = wake
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), 0.1)

    def wake(self) -> None:
        self._wake()


class LoopbackServer:
    """Any ASGI app on a loopback port, served by uvicorn in a daemon thread."""

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = _Uvicorn(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving: returns once the port refuses new connections and every answer being sent was sent.

        uvicorn's shutdown then waits a fixed 0.1 s for idle connections to close; that part is left to the
        daemon thread (nothing is being answered any more), which a test suite stopping hundreds of servers
        would otherwise wait out each time.
        """
        self._server.should_exit = True
        self._server.wake()
        deadline = time.monotonic() + 5
        while self._thread.is_alive() and time.monotonic() < deadline:
            if self._server.started and not self._serving():
                break
            time.sleep(0.002)
        self._sock.close()

    def _serving(self) -> bool:
        """Still accepting, or still answering a request (uvicorn keeps each request's task until it ends)."""
        return bool(self._server.server_state.tasks) or any(server.is_serving() for server in self._server.servers)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SandboxServer(LoopbackServer):
    """The sandbox of every protocol on a loopback port."""

    def __init__(self, state: SandboxState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or state_from_env()
        super().__init__(build_app(self.state), host=host, port=port)

    def start(self) -> SandboxServer:
        super().start()
        return self

    def __enter__(self) -> SandboxServer:
        return self.start()
