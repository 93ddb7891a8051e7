"""Starting the page: sandbox or real providers, whose keys may be spent, launch options, share link."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from starlette.routing import BaseRoute

from playground.arena import Arena
from playground.errors import ConfigError
from playground.history import DB_NAME, INPUTS_DIR
from playground.providers import REGISTRY
from playground.service import GenerationService
from playground.settings import Settings
from playground.ui.arena_handlers import ArenaHandlers
from playground.ui.handlers import Handlers, UiOptions
from playground.ui.layout import ASSETS, CSS, build_ui
from playground.ui.secret import SECRET_FILE, browser_secret

log = logging.getLogger(__name__)

SHARE_KEYS_ENV = "PLAYGROUND_SHARE_SERVER_KEYS"
AUTH_ENV = "PLAYGROUND_AUTH"


@dataclass
class Page:
    """A built page: the Blocks, its handlers, and how to launch it."""

    demo: gr.Blocks
    handlers: Handlers
    auth: tuple[str, str] | None
    arena: ArenaHandlers | None = None
    routes: list[BaseRoute] = field(default_factory=list)  # served beside the UI (the arena's blind images)


def needs_sandbox(settings: Settings, *, asked: bool) -> bool:
    """--sandbox, PLAYGROUND_SANDBOX=1, or no provider key configured at all."""
    return asked or settings.sandbox or not any(settings.secret(spec.key_env) for spec in REGISTRY.values())


def parse_auth(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """PLAYGROUND_AUTH=user:pass as a (user, password) pair; ConfigError when malformed."""
    raw = environ.get(AUTH_ENV, "").strip()
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"{AUTH_ENV} must look like user:password.")
    return user, password


def may_spend_server_keys(*, share: bool, auth: tuple[str, str] | None, environ: Mapping[str, str]) -> bool:
    """Strangers on a share link spend the server's keys only if the operator allowed it or set a password."""
    allowed = environ.get(SHARE_KEYS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return not share or allowed or auth is not None


def build_page(service: GenerationService, *, share: bool, environ: Mapping[str, str] | None = None) -> Page:
    """The page for ``service``, with the options the environment asks for."""
    env = os.environ if environ is None else environ
    auth = parse_auth(env)
    settings = service.settings
    server_keys = may_spend_server_keys(share=share, auth=auth, environ=env)
    options = UiOptions(sandbox=settings.sandbox, server_keys=server_keys, shared=share)
    handlers = Handlers(service, options)
    arena = None
    if service.history is not None:  # votes are kept in the history
        limit = settings.arena_votes_per_minute if share else 0  # a local page has one visitor
        arena = ArenaHandlers(handlers, Arena(service, votes_per_minute=limit or None))
    demo = build_ui(handlers, secret=browser_secret(settings.data_dir, env), arena=arena)
    return Page(demo, handlers, auth, arena, arena.routes() if arena else [])


def launch(page: Page, *, share: bool = False, **overrides: Any) -> tuple[FastAPI, str, str | None]:
    """Serve the page without blocking; (app, local URL, share URL or None). A failed share keeps serving locally."""
    options: dict[str, Any] = dict(
        share=share,
        auth=page.auth,
        prevent_thread_lock=True,
        theme=gr.themes.Soft(),
        css=CSS,
        ssr_mode=False,
        run_history=False,  # it would keep every run's inputs, keys included, in the browser
        footer_links=["api", "gradio", "settings"],
        allowed_paths=allowed_paths(page.handlers.service.settings),
        blocked_paths=blocked_paths(page.handlers.service.settings),
        show_error=True,
    )
    app, local_url, share_url = page.demo.launch(**(options | overrides))
    serve_routes(app, page.routes)
    if share and not share_url:
        page.handlers.options.notices.append(share_failed_note(local_url))
    return app, local_url, share_url


def share_failed_note(local_url: str) -> str:
    """What to tell the operator (and show on the page) when no share link could be made."""
    return (
        "⚠ The share link could not be created (Gradio's share server is unreachable from here). "
        f"The playground keeps serving locally at {local_url}."
    )


def allowed_paths(settings: Settings) -> list[str]:
    """The shipped example image, and the results and kept inputs when they lie outside the working directory.

    Only the inputs folder of the data dir: the history file and the browser secret beside it are never served.
    """
    kept = [settings.out_dir.resolve(), (settings.data_dir / INPUTS_DIR).resolve()]
    return [str(ASSETS)] + [str(path) for path in kept if not path.is_relative_to(Path.cwd())]


def blocked_paths(settings: Settings) -> list[str]:
    """The history database, the browser secret and the sandbox's state: never served, even under the cwd."""
    data = settings.data_dir.resolve()
    private = [f"{DB_NAME}{suffix}" for suffix in ("", "-wal", "-shm", "-journal")] + [SECRET_FILE, "sandbox"]
    return [str(data / name) for name in private]


def serve_routes(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Serve ``routes`` beside the UI, ahead of Gradio's own (webhooks, hosted inputs)."""
    app.router.routes[0:0] = list(routes)


def in_background(page: Page, work: Coroutine[object, object, object]) -> None:
    """Run ``work`` on the server's event loop, where the service's HTTP client and callback inbox live."""
    servers = getattr(page.demo.server, "servers", None)  # uvicorn's listening sockets, once started
    if not servers:
        log.warning("could not find the server's event loop; background work skipped")
        work.close()
        return
    asyncio.run_coroutine_threadsafe(work, servers[0].get_loop())
