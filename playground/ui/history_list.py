"""The History list: one row per run that a person can scan (thumbnails, prompt, providers, outcome in plain
words), read only, opened with one click. One HTML string for one gr.HTML component; no gradio here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from playground import derived, jobstate
from playground.history import RunSummary
from playground.outputs import kept_results
from playground.providers import ProviderSpec
from playground.ui.format import counts_text, model_short, money
from playground.ui.grid import file_url
from playground.ui.history_view import KIND_WORDS, local_time, short_prompt

THUMBS_PER_RUN = 4
PROVIDERS_NAMED = 3  # "KIE AI, fal.ai, BFL and 5 more"
RUN_WORDS = {"done": "all done", "failed": "failed", "mixed": "some failed", "stopped": "stopped", "running": "running"}


def run_words(run: RunSummary) -> tuple[str, str]:
    """(one word for the run, its counts): 'stopped', '3 done · 1 stopped' — the words the summary uses."""
    phases = [jobstate.phase(state) for _, _, state in run.job_states]
    return RUN_WORDS[jobstate.run_phase(phases)], counts_text(phases)


def providers_text(run: RunSummary, specs: Mapping[str, ProviderSpec]) -> str:
    """'KIE AI, fal.ai, Replicate and 4 more · pro, max': who ran, in words."""
    labels = list(dict.fromkeys(specs[p].label if p in specs else p for p, _, _ in run.job_states))
    named = ", ".join(labels[:PROVIDERS_NAMED]) + (
        f" and {len(labels) - PROVIDERS_NAMED} more" if len(labels) > 3 else ""
    )
    models = ", ".join(dict.fromkeys(model_short(m) for _, m, _ in run.job_states))
    return f"{named} · {models}" if named else "no jobs"


async def thumbnails(runs: Sequence[RunSummary], out_dir: Path) -> dict[str, list[Path]]:
    """Up to THUMBS_PER_RUN small pictures per run, from the results on disk (made once, off the event loop)."""

    def find() -> dict[str, list[Path]]:
        found = {}
        for run in runs:
            done = [(p, m) for p, m, state in run.job_states if state == "succeeded"]
            files = list(kept_results(out_dir / run.run_id, done).values())[:THUMBS_PER_RUN]
            found[run.run_id] = [thumb for path in files if (thumb := derived.thumbnail(path)) is not None]
        return found

    return await asyncio.to_thread(find)


def runs_html(runs: Sequence[RunSummary], specs: Mapping[str, ProviderSpec], thumbs: Mapping[str, list[Path]]) -> str:
    """Every run as a row, newest first."""
    rows = "".join(run_html(run, specs, thumbs.get(run.run_id, [])) for run in runs)
    return f'<div class="kx-runs" role="list">{rows}</div>' if rows else ""


def run_html(run: RunSummary, specs: Mapping[str, ProviderSpec], thumbs: Sequence[Path]) -> str:
    """One row: a button, so one click (or Enter) opens the run; nothing in it looks editable."""
    word, counts = run_words(run)
    done = sum(1 for *_, state in run.job_states if state == "succeeded")
    pictures = "".join(f'<img src="{file_url(t)}" alt="" loading="lazy">' for t in thumbs)
    more = done - len(thumbs)
    pictures += f'<span class="kx-more">+{more}</span>' if more > 0 else ""
    pictures = pictures or '<span class="kx-none"></span>'
    kind = KIND_WORDS.get(run.kind, run.kind)
    meta = f"{kind} · {local_time(run.created_at)} · {providers_text(run, specs)}"
    cost = f" · {money(run.cost_usd)}" if run.cost_usd else ""
    return (
        f'<button type="button" class="kx-run" role="listitem" data-run="{escape(run.run_id)}" data-outcome="{word}"'
        f' title="Open this run">'
        f'<span class="kx-thumbs">{pictures}</span>'
        f'<span class="kx-run-text"><span class="kx-run-prompt">{escape(short_prompt(run.prompt, 160))}</span>'
        f'<span class="kx-run-meta">{escape(meta)}</span></span>'
        f'<span class="kx-run-outcome"><strong>{escape(word)}</strong><br>{escape(counts)}{cost}</span></button>'
    )
