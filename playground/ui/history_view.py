"""The History tab's text and panels, from stored runs: the list's rows, a run's header, its board.

No gradio here. A stored job becomes the same PanelView the live tabs show, with its result rebuilt
from the file kept on disk (the original bytes; the provider's URL may be long gone).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from playground import jobstate
from playground.history import OUTCOMES, JobRecord, RunRecord
from playground.images import RESULT_FORMATS
from playground.models import MODELS, Events, JobResult, WireRequest
from playground.providers import ProviderSpec
from playground.ui.board import Board, PanelKey, PanelView, unconfirmed_source
from playground.ui.format import INFO, STATE_ICONS, WARNING, cost_text, counts_text, model_short

KIND_WORDS = {"generate": "Text to image", "edit": "Edit", "resume": "Resumed task"}
PROMPT_CHARS = 70  # the list shows this much of a prompt; opening the run shows all of it
LIST_LIMIT = 100  # newest runs listed at once; search or filter to reach older ones
OWNER_BYTES = 18  # 144 random bits: nobody guesses another browser's id
_OWNER_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_NOT_RECORDED = WireRequest(method="GET", url="(not recorded)")


# --- who owns a run ----------------------------------------------------------------------------------


def new_owner() -> str:
    """A fresh opaque owner id for one browser."""
    return secrets.token_urlsafe(OWNER_BYTES)


def valid_owner(value: object) -> str | None:
    """The owner id a browser sent, or None when it is missing or not one we could have made."""
    return value if isinstance(value, str) and _OWNER_SHAPE.fullmatch(value) else None


# --- the list ----------------------------------------------------------------------------------------


def list_filters(query: str | None, provider: str | None, model: str | None, outcome: str | None) -> dict[str, Any]:
    """The store's list_runs filters from the tab's controls; blank means 'any'."""
    chosen = {"query": (query or "").strip(), "provider": provider, "model": model, "outcome": outcome}
    filters = {name: value or None for name, value in chosen.items()}
    if filters["outcome"] not in (None, *OUTCOMES):
        filters["outcome"] = None
    return filters


def local_time(moment: datetime) -> str:
    """'2025-11-23 14:02:05' in the server's time zone."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short_prompt(prompt: str, limit: int = PROMPT_CHARS) -> str:
    """The prompt on one line, cut at ``limit`` characters."""
    flat = " ".join(prompt.split()) or "(no prompt stored)"
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def list_note(count: int, *, filtered: bool, limit: int = LIST_LIMIT) -> str:
    """What the list shows, in a few words."""
    if count == 0:
        return "No run matches these filters." if filtered else "No runs yet: generate or edit, and they appear here."
    more = f" (the newest {limit}; search or filter to find older ones)" if count >= limit else ""
    return f"{count} run{'s' if count != 1 else ''}{more}. Click a run to open it."


# --- one run -----------------------------------------------------------------------------------------


def run_header(record: RunRecord) -> str:
    """Markdown above the panels: which run, when, how it went, the full prompt and its settings."""
    phases = [jobstate.phase(job.state, job.error_kind) for job in record.jobs]
    outcome = f"{jobstate.run_phase(phases)} ({counts_text(phases)})" if phases else "no jobs"
    cost = f" · {cost_text(record.cost_usd, None)}" if record.cost_usd is not None else ""
    kind = KIND_WORDS.get(record.kind, record.kind)
    head = f"**Run `{record.run_id}`** · {kind} · {local_time(record.created_at)} · {outcome}"
    lines = [head + cost]
    if record.prompt:
        lines.append("> " + " ".join(record.prompt.split()))
    if record.request is not None:
        lines.append(settings_text(record.request, record.targets))
    else:
        lines.append(f"{INFO} No request is stored for this run (a lone task resumed by id), so it cannot be re-run.")
    return "\n\n".join(lines)


def settings_text(request: Mapping[str, Any], targets: Iterable[tuple[str, str]]) -> str:
    """'Models pro, max · 16:9 · jpeg · seed 42 …': the stored request's settings on one line."""
    models = [model_short(m) for m in MODELS if any(model == m for _, model in targets)]
    ratio = request.get("aspect_ratio") or ("match the input" if request.get("match_input_ratio") else None)
    named = [
        ("aspect ratio", ratio),
        ("seed", request.get("seed")),
        ("safety tolerance", request.get("safety_tolerance")),
        ("guidance", request.get("guidance")),
        ("translation", _on_off(request.get("enable_translation"))),
    ]
    parts = [f"models {', '.join(models) or '–'}", str(request.get("output_format") or "jpeg")]
    parts += [f"{name} {value}" for name, value in named if value is not None]
    if request.get("prompt_upsampling"):
        parts.append("prompt upsampling")
    image = request.get("image") or {}
    if image:
        parts.append("input: " + ("uploaded file" if image.get("path") else f"URL {image.get('url')}"))
    return "Settings: " + " · ".join(parts)


def _on_off(flag: object) -> str | None:
    return None if flag is None else "on" if flag else "off"


def result_of(job: JobRecord) -> JobResult | None:
    """The job's result as the live panels know it, from the kept file; None if there is no readable file."""
    path = Path(job.result_path) if job.result_path else None
    if path is None or not path.is_file():
        return None
    if job.result is not None:  # kept whole (schema v5 on): its interval, breakdown and the provider's timings
        return job.result.model_copy(update={"path": str(path), "sent": job.sent or job.result.sent})
    try:
        with Image.open(path) as img:
            fmt, width, height = str(img.format), img.width, img.height
    except (UnidentifiedImageError, OSError):
        return None
    return JobResult(
        path=str(path),
        image_url=job.result_url or "",
        mime_type=RESULT_FORMATS.get(fmt, "application/octet-stream"),
        width=width,
        height=height,
        size_bytes=path.stat().st_size,
        latency_s=job.latency_s or 0.0,
        cost_usd=job.cost_usd,
        cost_source=job.cost_source,
        sent=job.sent or _NOT_RECORDED,
    )


def panel_of(job: JobRecord, spec: ProviderSpec) -> PanelView:
    """A stored job as a panel: its last state, result, error, notes and what was sent."""
    result = result_of(job)
    notes = list(job.notes)
    if job.result_path and result is None:
        url = job.result_url or "not recorded"
        notes.append(
            f"{WARNING} The result file {job.result_path} is gone; the provider's URL was {url} (these expire)."
        )
    elapsed = job.latency_s if job.latency_s is not None else _last_elapsed(job)
    view = PanelView(job.provider, job.model, spec.label, spec.key_env, state=job.state, elapsed_s=elapsed)
    view.task_id, view.error, view.kind, view.notes = job.task_id, job.error, job.error_kind, tuple(notes)
    view.sent, view.result, view.resumed = job.sent, result, was_resumed(job)
    view.unconfirmed_source = unconfirmed_source(spec, job.model)
    return view


def was_resumed(job: JobRecord) -> bool:
    """Whether the job ran again after it had stopped or timed out (it was resumed by task id)."""
    paused = False
    for change in job.changes:
        if change.state == "running" and paused:
            return True
        paused = change.state == "stopped" or change.state == "failed"
    return False


def _last_elapsed(job: JobRecord) -> float:
    timed = [c.elapsed_s for c in job.changes if c.elapsed_s is not None]
    return timed[-1] if timed else 0.0


def board_of(
    record: RunRecord, specs: Mapping[str, ProviderSpec], keys: Iterable[PanelKey], clock: Callable[[], float]
) -> Board:
    """The run's jobs as a board (only jobs the page has a panel for), with the kept input as 'before'."""
    shown = set(keys)
    panels = {
        (j.provider, j.model): panel_of(j, specs[j.provider]) for j in record.jobs if (j.provider, j.model) in shown
    }
    before = str(record.input_path) if record.input_path and record.input_path.is_file() else None
    board = Board(panels, before, clock, clock(), edit=record.kind == "edit" or before is not None)
    board.run_id, board.started_wall = record.run_id, record.created_at
    return board


def timeline(job: JobRecord, started: datetime) -> str:
    """Each state the job entered, when, and what was said, as Markdown lines."""
    lines = []
    for change in job.changes:
        offset = (change.at - started).total_seconds()
        said = f": {short_prompt(change.message, 160)}" if change.message else ""
        clock = change.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
        lines.append(f"- `{clock}` (+{offset:.1f} s) {STATE_ICONS.get(change.state, '')} **{change.state}**{said}")
    return "\n".join(lines)


def run_wall_s(record: RunRecord) -> float | None:
    """From the run's start to its last state change, if any change is stored."""
    moments = [c.at for job in record.jobs for c in job.changes]
    return (max(moments) - record.created_at).total_seconds() if moments else None


async def with_sent(events: Events, sent: Mapping[PanelKey, WireRequest]) -> Events:
    """Resumed jobs' events carrying the request first sent (a resumed result only knows '(resumed)')."""
    async for event in events:
        original = sent.get((event.provider, event.model))
        if event.result is not None and original is not None:
            event = event.model_copy(update={"result": event.result.model_copy(update={"sent": original})})
        yield event
