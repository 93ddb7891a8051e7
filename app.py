"""Serve the playground: ``python app.py [--sandbox] [--share] [--mcp]`` (GRADIO_SERVER_NAME/PORT honoured)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from dotenv import load_dotenv

from playground.composition import background, build_service, set_public_address, start_sandbox
from playground.errors import PlaygroundError
from playground.history import open_history
from playground.redact import install_log_redaction, redact_everywhere
from playground.sandbox.server import SandboxServer
from playground.service import GenerationService
from playground.settings import Settings
from playground.ui import runtime
from playground.webhooks import routes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: ``[--sandbox] [--share] [--mcp]``."""
    parser = argparse.ArgumentParser(description="FLUX.1 Kontext playground in the browser.")
    parser.add_argument("--sandbox", action="store_true", help="use the local sandbox instead of real providers")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--mcp", action="store_true", help="also serve the API endpoints as MCP tools")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_dotenv()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()
    try:
        serve(args)
    except PlaygroundError as exc:  # bad settings, an unusable store: one sentence, no traceback
        print(f"error: {redact_everywhere(str(exc))}", file=sys.stderr, flush=True)
        sys.exit(2)


@dataclass
class Started:
    """A serving playground: its page, service, in-app sandbox (if any) and addresses."""

    page: runtime.Page
    service: GenerationService
    sandbox: SandboxServer | None
    local_url: str
    share_url: str | None


def start(args: argparse.Namespace, **launch: Any) -> Started:
    """Build and launch the playground without blocking; ``launch`` overrides Gradio's launch options (tests)."""
    settings = Settings.from_env()
    # first: an unusable store is said before anything starts (PostgreSQL is opened by build_service)
    history = None if settings.database_url else open_history(settings.data_dir)
    sandbox = None
    if runtime.needs_sandbox(settings, asked=args.sandbox):
        exposed = runtime.is_exposed(share=args.share, environ=os.environ)
        settings, sandbox = start_sandbox(settings, os.environ, exposed=exposed)
        print("No real provider is called: the playground runs on the local sandbox.", flush=True)
    service = build_service(settings, host_inputs=settings.sandbox, history=history)
    page = runtime.build_page(service, share=args.share)
    # quiet: Gradio's own hint names launch(); mcp_server: Gradio does not read --mcp from the command line itself
    options: dict[str, Any] = {"share": args.share, "quiet": True, "mcp_server": args.mcp} | launch
    app, local_url, share_url = runtime.launch(page, **options)
    print(f"The playground is at {local_url}" + (f" and {share_url}" if share_url else ""), flush=True)
    if options["share"] and not share_url:
        print(runtime.share_failed_note(local_url), file=sys.stderr, flush=True)
    elif not args.share:
        print("To share it with a public link: python app.py --share", flush=True)
    set_public_address(service, local_url, share_url, sandbox)
    page.links.base_url = (service.settings.public_base_url or share_url or local_url).rstrip("/")
    runtime.serve_routes(app, routes(service, service.input_host, page.links))
    runtime.in_background(page, background(service))
    return Started(page, service, sandbox, local_url, share_url)


def serve(args: argparse.Namespace) -> None:
    start(args).page.demo.block_thread()


if __name__ == "__main__":
    main()
