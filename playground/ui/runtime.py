"""Starting the page: sandbox or real providers, whose keys may be spent, launch options, share link."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from fastapi import FastAPI
from starlette.routing import BaseRoute

from playground.arena import Arena
from playground.errors import ConfigError
from playground.history import DB_NAME, INPUTS_DIR
from playground.hosting import HOSTED_DIR
from playground.images import MAX_INPUT_BYTES
from playground.links import ResultLinks
from playground.providers import REGISTRY
from playground.service import GenerationService
from playground.settings import Settings
from playground.ui.api import ApiEndpoints, add_endpoints
from playground.ui.arena_handlers import ArenaHandlers
from playground.ui.gradio_fixes import apply_gradio_fixes, cache_page_answers, keep_frontend_files
from playground.ui.handlers import Handlers, UiOptions
from playground.ui.layout import build_ui, page_css, page_head
from playground.ui.page import ASSETS
from playground.ui.secret import SECRET_FILE, browser_secret
from playground.ui.visitors import listens_beyond_loopback

log = logging.getLogger(__name__)

SHARE_KEYS_ENV = "PLAYGROUND_SHARE_SERVER_KEYS"
MAX_UPLOAD = MAX_INPUT_BYTES
AUTH_ENV = "PLAYGROUND_AUTH"
SPACE_ENV = "SPACE_ID"  # set by Hugging Face on a Space: the page is public, like a share link


@dataclass
class Page:
    """A built page: the Blocks, its handlers, and how to launch it."""

    demo: gr.Blocks
    handlers: Handlers
    auth: tuple[str, str] | None
    links: ResultLinks
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
    """Whether everyone may spend the server's keys: on a page nobody else reaches, or when the operator allowed
    it or set a password. On an exposed page (``share``: a share link or listening beyond loopback) the local
    user still may, request by request (Handlers.trusted)."""
    allowed = environ.get(SHARE_KEYS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return not share or allowed or auth is not None


def is_exposed(*, share: bool, environ: Mapping[str, str]) -> bool:
    """Whether strangers can reach the page: a share link, or GRADIO_SERVER_NAME beyond loopback (0.0.0.0)."""
    return share or listens_beyond_loopback(environ)


def build_page(service: GenerationService, *, share: bool, environ: Mapping[str, str] | None = None) -> Page:
    """The page for ``service``, with the options the environment asks for."""
    env = os.environ if environ is None else environ
    auth = parse_auth(env)
    settings = service.settings
    exposed = is_exposed(share=share, environ=env) or bool(env.get(SPACE_ENV))
    server_keys = may_spend_server_keys(share=exposed, auth=auth, environ=env)
    options = UiOptions(
        sandbox=settings.sandbox,
        server_keys=server_keys,
        shared=exposed,
        auth=auth is not None,
        local_visitors=not share,  # behind a share link every request comes from the tunnel on this machine
    )
    handlers = Handlers(service, options)
    apply_gradio_fixes()
    secret = browser_secret(settings.data_dir, env)
    service.secrets.keep([secret, auth[1] if auth else None])  # never shown or logged, like the provider keys
    arena = None
    if service.history is not None:  # votes are kept in the history
        limit = settings.arena_votes_per_minute if exposed else 0  # a page nobody else reaches has one visitor
        arena = ArenaHandlers(handlers, Arena(service, votes_per_minute=limit or None))
    demo = build_ui(handlers, secret=secret, arena=arena)
    links = ResultLinks(secret, settings.public_base_url or "http://127.0.0.1")
    add_endpoints(demo, ApiEndpoints(handlers, links))
    return Page(demo, handlers, auth, links, arena, arena.routes() if arena else [])


def launch(page: Page, *, share: bool = False, **overrides: Any) -> tuple[FastAPI, str, str | None]:
    """Serve the page without blocking; (app, local URL, share URL or None). A failed share keeps serving locally."""
    options: dict[str, Any] = dict(
        share=share,
        auth=page.auth,
        prevent_thread_lock=True,
        theme=gr.themes.Soft(),
        css=page_css(),
        head=page_head(),
        ssr_mode=False,
        run_history=False,  # it would keep every run's inputs, keys included, in the browser
        footer_links=["api", "gradio", "settings"],
        allowed_paths=allowed_paths(page.handlers.service.settings),
        blocked_paths=blocked_paths(page.handlers.service.settings),
        show_error=False,  # a stranger sees our sentences, never an exception's text (paths, internals)
        max_file_size=MAX_UPLOAD,  # an upload larger than any input we take is refused before it fills the disk
    )
    app, local_url, share_url = page.demo.launch(**(options | overrides))
    if options["auth"] is None and overrides.get("auth") is None:  # with a password, answers name the user
        cache_page_answers(app)
    keep_frontend_files(app)
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
    """The shipped example image, the results (the grid and History show them by URL) and the kept inputs.

    Only the inputs folder of the data dir: the history file and the browser secret beside it are never served.
    """
    kept = [settings.out_dir.resolve(), (settings.data_dir / INPUTS_DIR).resolve()]
    return [str(ASSETS)] + [str(path) for path in kept]


def blocked_paths(settings: Settings) -> list[str]:
    """The history database, the browser secret and the sandbox's state: never served, even under the cwd."""
    data = settings.data_dir.resolve()
    private = [f"{DB_NAME}{suffix}" for suffix in ("", "-wal", "-shm", "-journal")] + [
        SECRET_FILE,
        "sandbox",
        HOSTED_DIR,
    ]
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
