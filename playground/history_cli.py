"""``python -m playground history``: list past runs, newest first, or show one run in full."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from playground.history import OUTCOMES, History, JobRecord, RunRecord, RunSummary, open_store
from playground.models import MODELS
from playground.settings import Settings

EXIT_OK, EXIT_NOT_FOUND = 0, 2
PROMPT_CHARS = 60  # the list shows this much of each prompt
_REQUEST_SKIP = ("prompt", "image", "model")  # shown on their own lines, or per job


def add_history_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``history`` (the list, with filters) and ``history show RUN_ID`` to the CLI."""
    history = subparsers.add_parser("history", help="past runs, newest first; 'history show RUN_ID' for one run")
    history.add_argument("--query", help="only runs whose prompt contains this (any case)")
    history.add_argument("--provider", help="only runs with a job on this provider")
    history.add_argument("--model", choices=MODELS, help="only runs with a job on this model")
    history.add_argument("--outcome", choices=OUTCOMES)
    history.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    history.add_argument("--json", action="store_true", help="a JSON array of runs on stdout")
    sub = history.add_subparsers(dest="history_command", metavar="show")
    show = sub.add_parser("show", help="one run: request, jobs, results, errors, every state change")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="the run as one JSON object")


async def run_history_command(
    args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``history`` or ``history show``; returns the exit status (2 when the run is not in the history)."""
    out, err = out or sys.stdout, err or sys.stderr
    store = open_store(settings)
    try:
        if getattr(args, "history_command", None) == "show":
            return await _show(store, args.run_id, as_json=args.json, out=out, err=err)
        runs = await store.list_runs(
            query=args.query, provider=args.provider, model=args.model, outcome=args.outcome, limit=args.limit
        )
        filtered = any((args.query, args.provider, args.model, args.outcome))
        _write_list(runs, as_json=args.json, out=out, filtered=filtered)
        return EXIT_OK
    finally:
        await store.aclose()


async def _show(store: History, run_id: str, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    record = await store.get_run(run_id)
    if record is None:
        err.write(f"error: run {run_id} is not in the history.\n")
        return EXIT_NOT_FOUND
    out.write(json.dumps(record.model_dump(mode="json"), indent=2) + "\n" if as_json else run_text(record))
    return EXIT_OK


def _write_list(runs: list[RunSummary], *, as_json: bool, out: TextIO, filtered: bool) -> None:
    if as_json:
        out.write(json.dumps([run.model_dump(mode="json") for run in runs], indent=2) + "\n")
    elif not runs:
        out.write("No run matches these filters.\n" if filtered else "No runs in the history yet.\n")
    else:
        out.writelines(summary_line(run) + "\n" for run in runs)


def _when(run: RunSummary) -> str:
    return run.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def summary_line(run: RunSummary) -> str:
    """Two lines for one run: when, id, outcome, kind, prompt; then each job and its state."""
    jobs = ", ".join(f"{p} {m.removeprefix('flux-kontext-')} {state}" for p, m, state in run.job_states)
    cost = f"; ${run.cost_usd:.3f}" if run.cost_usd else ""
    head = f"{_when(run)}  {run.run_id}  {run.outcome:<9}  {run.kind:<8}  {_short(run.prompt, PROMPT_CHARS)!r}"
    return f"{head}\n{'':<25}{jobs or 'no jobs'}{cost}"


def run_text(run: RunRecord) -> str:
    """The full text of one run, for ``history show``."""
    lines = [f"run {run.run_id}: {run.kind}, {run.outcome}, started {_when(run)}", f"prompt: {run.prompt}"]
    params = {k: v for k, v in (run.request or {}).items() if k not in _REQUEST_SKIP and v not in (None, False)}
    if params:
        lines.append("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    image = (run.request or {}).get("image") or {}
    if image:
        lines.append(f"input image: {run.input_path or image.get('url')}")
    for job in run.jobs:
        lines.extend(job_lines(job))
    return "\n".join(lines) + "\n"


def job_lines(job: JobRecord) -> list[str]:
    """One job: state, task id, latency, cost, result, error, notes, what was sent, every state change."""
    facts = [f"task {job.task_id}" if job.task_id else "not submitted"]
    facts += [f"{job.latency_s:.1f} s"] if job.latency_s is not None else []
    facts += [f"${job.cost_usd:.3f} ({job.cost_source})"] if job.cost_usd is not None else []
    lines = [f"- {job.provider} {job.model}: {job.state}, {', '.join(facts)}"]
    if job.result_path:
        lines.append(f"  image: {job.result_path} (from {job.result_url})")
    if job.error:
        lines.append(f"  error [{job.error_kind}/{job.error_code}]: {job.error}")
    lines += [f"  note: {note}" for note in job.notes]
    if job.sent is not None:
        lines.append(f"  sent: {job.sent.method} {job.sent.url} {_compact(job.sent.body)}")
    for change in job.changes:
        lines.append(f"  {change.at:%H:%M:%S} {change.state:<9} {change.message}".rstrip())
    return lines


def _compact(body: dict[str, Any] | None) -> str:
    return json.dumps(body, separators=(",", ":")) if body is not None else ""
