"""Command line: list providers, generate across providers, resume a job, run the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn, TextIO

from starlette.applications import Starlette

from playground.errors import ConfigError, InvalidInputError, PlaygroundError
from playground.history import History, open_store
from playground.history_cli import add_history_commands, run_history_command
from playground.hosting import InputHost
from playground.images import load_input_image
from playground.leaderboard_cli import add_leaderboard_command, run_leaderboard_command
from playground.models import MODELS, Events, GenerationRequest, JobEvent, JobRef
from playground.providers import REGISTRY, get_spec
from playground.redact import Secrets, install_log_redaction
from playground.request import build_request
from playground.service import GenerationService
from playground.settings import Settings
from playground.stats_cli import add_stats_command, run_stats_command
from playground.storage import open_storage
from playground.webhooks import routes

EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT = 0, 1, 2
MAX_TIMEOUT_S = 24 * 3600.0  # a day: beyond it a job is better resumed later by task id


class Parser(argparse.ArgumentParser):
    """argparse, saying a bad value in one sentence (no usage block above it); exit status 2 as before."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help); nothing was sent.\n")


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="python -m playground", description="FLUX.1 Kontext across hosted providers.")
    sub: Any = root.add_subparsers(dest="command", required=True)
    providers = sub.add_parser("providers", help="each provider: configured?, capabilities, price")
    providers.add_argument("--json", action="store_true")
    gen = sub.add_parser("generate", help="run one prompt on every (provider, model) combination")
    gen.add_argument("--provider", action="append", required=True, help="repeat for several")
    gen.add_argument("--model", action="append", choices=MODELS, help="repeat for several (default pro)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--image", help="input image to edit: a local JPEG/PNG/WebP file or an http(s) URL")
    gen.add_argument("--aspect-ratio")
    gen.add_argument("--output-format", choices=("jpeg", "png"), default="jpeg")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--safety-tolerance", type=int)
    gen.add_argument("--prompt-upsampling", action="store_true")
    gen.add_argument("--translation", choices=("on", "off"))
    gen.add_argument("--guidance", type=float)
    _common(gen)
    resume = sub.add_parser(
        "resume", help="wait again for submitted jobs (--run RUN_ID, or --provider/--task-id); never resubmits"
    )
    resume.add_argument("--run", help="resume this run's unfinished or timed-out jobs (see 'history')")
    resume.add_argument("--provider")
    resume.add_argument("--model", choices=MODELS, default="flux-kontext-pro")
    resume.add_argument("--task-id")
    resume.add_argument("--url", action="append", default=[], metavar="NAME=URL", help="a URL the provider returned")
    _common(resume)
    box = sub.add_parser("sandbox", help="serve the sandbox of every protocol on a loopback port")
    box.add_argument("--port", type=int, default=8900)
    box.add_argument("--ready-made", action="store_true", help="serve one small image instead of drawing (benchmarks)")
    add_history_commands(sub)
    add_stats_command(sub)
    add_leaderboard_command(sub)
    return root


def _common(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--out", type=Path, help="folder for the images (default ./outputs)")
    cmd.add_argument("--timeout", type=seconds, help="seconds to wait for each job (default 300)")
    cmd.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    cmd.add_argument("--sandbox", action="store_true", help="run against the local sandbox (no keys needed)")


def seconds(text: str) -> float:
    """A positive number of seconds (argparse type): refused with a sentence before anything is sent."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, not {text}")
    return value


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 a job failed, 2 bad input or configuration)."""
    args = parser().parse_args(argv)
    install_log_redaction()
    secrets = Secrets()  # alive until main returns, so an error printed below is redacted too
    try:
        settings = settings or Settings.from_env()
        secrets.keep(settings.secrets.values())
        if args.command == "providers":
            return show_providers(settings, as_json=args.json, out=sys.stdout)
        if args.command == "history":
            return asyncio.run(run_history_command(args, settings))
        if args.command == "stats":
            return asyncio.run(run_stats_command(args, settings))
        if args.command == "leaderboard":
            return asyncio.run(run_leaderboard_command(args, settings))
        if args.command == "sandbox":
            return serve_sandbox(args.port, ready_made=args.ready_made)
        return asyncio.run(_jobs(args, settings))
    except PlaygroundError as exc:
        print(f"error: {secrets.text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT


def show_providers(settings: Settings, *, as_json: bool, out: TextIO) -> int:
    rows = [_provider_row(name, settings) for name in REGISTRY]
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    for row in rows:
        state = "configured" if row["configured"] else f"not configured (set {row['key_env']})"
        prices = ", ".join(f"{m.split('-')[-1]} ${p}" for m, p in row["price_usd"].items()) or "price unknown"
        out.write(f"{row['name']:<10} {row['label']:<18} {state}\n")
        out.write(f"{'':<10} {', '.join(row['capabilities'])}; ratios {' '.join(row['aspect_ratios'])}; {prices}\n")
        out.write(f"{'':<10} {row['base_url']}\n")
    return EXIT_OK


def _provider_row(name: str, settings: Settings) -> dict[str, Any]:
    spec = REGISTRY[name]
    caps = spec.capabilities
    return {
        "name": name,
        "label": spec.label,
        "configured": settings.secret(spec.key_env) is not None,
        "key_env": spec.key_env,
        "base_url": settings.value(spec.base_url_env, spec.default_base_url),
        "models": list(spec.models),
        "capabilities": caps.summary(),
        "aspect_ratios": list(caps.aspect_ratios),
        "price_usd": {m: p.usd for m, p in spec.prices.items()},
    }


def serve_sandbox(port: int, *, ready_made: bool = False) -> int:
    """Serve every protocol on ``port``; print each *_BASE_URL to set (all of them: a KIE edit of a local file
    also needs KIE_UPLOAD_BASE_URL, or the upload would go to the real host with the key)."""
    from playground.sandbox.server import SandboxServer, base_urls, state_from_env

    state = state_from_env()
    state.ready_made = ready_made
    with SandboxServer(state, port=port) as server:
        print(f"sandbox serving every protocol at {server.url}/<provider> (Ctrl+C to stop); set:", flush=True)
        for env, url in base_urls(server.url).items():
            print(f"  {env}={url}")
        print("  and any non-blank key (e.g. KIE_API_KEY=sandbox-key)", flush=True)
        try:
            while True:
                asyncio.run(asyncio.sleep(3600))
        except KeyboardInterrupt:
            return EXIT_OK


async def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    with ExitStack() as servers:
        host, files = None, None
        if args.sandbox:
            settings, host, files = _sandbox(settings, servers)
        if args.out:
            settings = settings.model_copy(update={"out_dir": args.out})
        history = open_store(settings)
        service = GenerationService(settings, history=history, input_host=host, storage=open_storage(settings))
        if files is not None:
            files.router.routes.extend(routes(service, host))
        try:
            events = _generate(service, args) if args.command == "generate" else await _resume(service, history, args)
            return await _report(events, as_json=args.json)
        finally:
            await service.aclose()
            await history.aclose()


def _sandbox(settings: Settings, servers: ExitStack) -> tuple[Settings, InputHost, Starlette]:
    """The sandbox, and (like the app in sandbox mode) our own loopback server to host local inputs."""
    from playground.sandbox.server import LoopbackServer, SandboxServer, sandbox_settings

    sandbox = servers.enter_context(SandboxServer())
    files = Starlette()  # its routes are added once the service exists
    host = InputHost(servers.enter_context(LoopbackServer(files)).url)
    return sandbox_settings(settings, sandbox.url), host, files


def _generate(service: GenerationService, args: argparse.Namespace) -> Events:
    request = request_from_args(args)
    targets = [(get_spec(p).name, m) for p in dict.fromkeys(args.provider) for m in (args.model or [MODELS[0]])]
    plan = service.plan(request, targets)  # every check happens here, before anything is sent
    plan.raise_first()
    return service.run(plan, timeout_s=args.timeout)


async def _resume(service: GenerationService, history: History, args: argparse.Namespace) -> Events:
    if args.run:
        refs = [ref for record in await history.resumable_jobs(args.run) if (ref := record.ref()) is not None]
        if not refs:
            raise InvalidInputError(f"Run {args.run} has no unfinished or timed-out job to resume ('history show').")
        return service.resume(refs, run_id=args.run, timeout_s=args.timeout)
    if not (args.provider and args.task_id):
        raise InvalidInputError("Say what to resume: --run RUN_ID, or --provider and --task-id.")
    urls = dict(item.split("=", 1) for item in args.url if "=" in item)
    job = JobRef(provider=get_spec(args.provider).name, model=args.model, task_id=args.task_id, urls=urls)
    return service.resume(job, timeout_s=args.timeout)


def request_from_args(args: argparse.Namespace) -> GenerationRequest:
    """The request from CLI flags, or InvalidInputError with one clear sentence."""
    return build_request(
        args.prompt,
        image=load_input_image(args.image) if args.image else None,
        aspect_ratio=args.aspect_ratio,
        output_format=args.output_format,
        seed=args.seed,
        safety_tolerance=args.safety_tolerance,
        prompt_upsampling=args.prompt_upsampling,
        enable_translation=None if args.translation is None else args.translation == "on",
        guidance=args.guidance,
    )


async def _report(events, *, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    failed = False
    async for event in events:
        failed |= event.state in ("failed", "canceled", "stopped")
        print(json.dumps(event_json(event)) if as_json else event_line(event), flush=True)
    return EXIT_JOB_FAILED if failed else EXIT_OK


def event_json(event: JobEvent) -> dict[str, Any]:
    """The JSON line for one event: provider, model, state, task_id, elapsed_s, and outcome fields."""
    out: dict[str, Any] = {
        "run_id": event.run_id,
        "provider": event.provider,
        "model": event.model,
        "state": event.state,
        "task_id": event.task_id,
        "elapsed_s": event.elapsed_s,
        "message": event.message,
    }
    if event.notes:
        out["notes"] = list(event.notes)
    if event.result is not None:
        r = event.result
        out.update(
            files=[r.path],
            image_url=r.image_url,
            latency_s=r.latency_s,
            latency_low_s=r.latency_low_s,
            detected_via=r.detected_via,
            breakdown=r.breakdown,
            provider_timings=r.provider_timings,
            cost_usd=r.cost_usd,
            cost_source=r.cost_source,
            width=r.width,
            height=r.height,
            mime_type=r.mime_type,
            sent=r.sent.body,
        )
    if event.error is not None:
        out.update(error=event.error, code=event.code, kind=event.kind)
    return out


def event_line(event: JobEvent) -> str:
    head = f"[{event.provider_label} {event.model.removeprefix('flux-kontext-')}]"
    text = f"{head} {event.message}"
    if event.result is not None:
        text += f" -> {event.result.path} ({event.result.width}x{event.result.height})"
    for note in event.notes if event.state == "queued" else ():
        text += f"\n{head} note: {note}"
    return text


__all__ = ["main", "ConfigError"]
