"""Putting the app together: the service with history, storage, input hosting and callbacks; the in-app sandbox.

With PLAYGROUND_DATABASE_URL the history is PostgreSQL and this process is one of several replicas
(playground/replicas.py); otherwise SQLite and a local folder, as a single process.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit

from playground.history import History, open_history
from playground.history.sqlite_health import ensure_data_dir
from playground.hosting import HOSTED_DIR, DiskInputStore, InputHost
from playground.sandbox.server import SandboxServer, sandbox_settings, state_from_env
from playground.service import GenerationService
from playground.settings import Settings
from playground.storage import open_storage

log = logging.getLogger(__name__)

SANDBOX_PORT_ENV = "PLAYGROUND_SANDBOX_PORT"
SANDBOX_URL_ENV = "PLAYGROUND_SANDBOX_URL"  # a sandbox already running (replicas share one): start none
DEFAULT_SANDBOX_PORT = 8901  # fixed, so URLs stored with a job (BFL's polling_url, fal's) still work after a restart
UNKNOWN_ADDRESS = "http://127.0.0.1"  # replaced by the app's own URL once it is serving


def build_service(
    settings: Settings, *, host_inputs: bool = False, history: History | None = None
) -> GenerationService:
    """The one service of the app: history on; callbacks and input hosting when a public address is known.

    ``host_inputs``: host local inputs even without PUBLIC_BASE_URL (the sandbox reaches the app on loopback);
    call ``set_public_address`` once the app's URL is known.
    """
    public = settings.public_base_url
    store = DiskInputStore(settings.data_dir / HOSTED_DIR)  # kept across a restart, capped, expiring
    host = InputHost(public or UNKNOWN_ADDRESS, store=store) if public or host_inputs else None
    parts: dict[str, Any] = dict(input_host=host, callback_base_url=public, storage=open_storage(settings))
    if not settings.database_url:
        return GenerationService(settings, history=history or open_history(settings.data_dir), **parts)
    from playground.history.postgres import PostgresHistory
    from playground.replicas import Replicas

    shared = PostgresHistory.open(settings.database_url, settings.data_dir, lease_s=settings.lease_s)
    replicas = Replicas(shared)
    service = GenerationService(settings, history=shared, inbox=replicas.inbox, **parts)
    replicas.attach(service)
    log.info("replica %s on the shared history; results in %s", shared.replica, parts["storage"].describe())
    return service


def background(service: GenerationService) -> Coroutine[Any, Any, object]:
    """What the app runs beside the page: as one of several replicas, their loops; alone, resume its jobs."""
    from playground.replicas import Replicas

    if isinstance(service.relay, Replicas):
        return service.relay.run()
    return service.resume_unfinished()


def set_public_address(
    service: GenerationService, local_url: str, share_url: str | None, sandbox: SandboxServer | None = None
) -> None:
    """Once serving: a share link becomes the public address (callbacks and hosting); else hosting uses loopback.

    The in-app ``sandbox`` may then fetch the app's hosted inputs even when it fetches nothing else private.
    """
    if sandbox is not None:
        sandbox.state.allowed_input_origins |= {_origin(u) for u in (local_url, share_url) if u}
    if service.settings.public_base_url:
        return
    if share_url:
        service.callback_base_url = share_url.rstrip("/")
    if service.input_host is not None:
        service.input_host.public_base_url = (share_url or local_url).rstrip("/")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def start_sandbox(
    settings: Settings, environ: Mapping[str, str], *, exposed: bool = False
) -> tuple[Settings, SandboxServer | None]:
    """The sandbox inside the app: its jobs kept under the data dir, on a fixed port when it is free.

    ``exposed``: strangers reach the page (a share link, listening beyond loopback), so the sandbox fetches
    input images only from public addresses, as a hosted provider would, not from this machine's network.
    With PLAYGROUND_SANDBOX_URL the app uses that sandbox instead (several replicas must share one).
    """
    if environ.get(SANDBOX_URL_ENV, "").strip():
        return sandbox_settings(settings, environ[SANDBOX_URL_ENV].strip()), None
    state = state_from_env(environ, persist_dir=ensure_data_dir(settings.data_dir) / "sandbox")
    state.guard_inputs = exposed
    port = int(environ.get(SANDBOX_PORT_ENV) or DEFAULT_SANDBOX_PORT)
    try:
        server = SandboxServer(state, port=port).start()
    except OSError:
        log.warning("port %s is busy: the sandbox takes a free one (jobs of an earlier run may not resume)", port)
        server = SandboxServer(state, port=0).start()
    return sandbox_settings(settings, server.url), server
