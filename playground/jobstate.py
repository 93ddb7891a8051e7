"""One job's life, told the same way everywhere: its phases, the moves between them, and what can resume.

The engine's ``JobState`` is what happened (the provider's word, normalised, or ``stopped`` when we stopped
waiting); a *phase* is what a person is told: a failure only because we stopped waiting at the deadline is
"timed out", a success is "done". The live panels and tiles, the run summary, the History list and its
panels, and Resume all read this module, so they cannot disagree about a job.

    queued ──> running ──> succeeded (done)
      │           ├──────> failed | canceled
      │           └──────> stopped ──(resume)──> running
      └──────────────────> failed (refused, or the create failed) | stopped (before it was submitted)
    failed at the deadline (timed out) ──(resume)──> running

A stopped job is not a failure: the provider may still finish it, and Resume waits for it again by task id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Phase = Literal["queued", "running", "done", "failed", "timed out", "canceled", "stopped"]
PHASES: tuple[Phase, ...] = ("done", "running", "queued", "stopped", "timed out", "failed", "canceled")
"""Every phase, in the order a summary counts them."""
TIMED_OUT_KINDS = frozenset({"deadline"})
RESUMABLE_KINDS = frozenset({"deadline", "unknown_status"})
"""Failures that only mean we stopped waiting (at the deadline, or after unreadable statuses): the job may
still end well, so it can be waited for again."""
ACTIVE_STATES = frozenset({"queued", "running"})
_AFTER_WAITING = frozenset({"running", "succeeded", "failed", "canceled", "stopped"})
_MOVES: dict[str, frozenset[str]] = {
    "queued": _AFTER_WAITING | {"queued"},
    "running": _AFTER_WAITING,
    "stopped": _AFTER_WAITING,  # resumed (stopped -> stopped: a create that was on its way gave its task id)
    "succeeded": frozenset(),
    "canceled": frozenset(),
}


def phase(state: str, kind: str | None = None) -> Phase:
    """What a person is told about a job in ``state`` (``kind``: the failure's kind, if it failed)."""
    if state == "succeeded":
        return "done"
    if state == "failed" and kind in TIMED_OUT_KINDS:
        return "timed out"
    if state in ("queued", "running", "failed", "canceled", "stopped"):
        return state  # type: ignore[return-value]
    return "failed"  # a word this playground does not know: never shown as still running


def is_active(state: str) -> bool:
    """Whether the job may still change without anyone asking (queued or running)."""
    return state in ACTIVE_STATES


def is_resumable(state: str, kind: str | None, task_id: str | None) -> bool:
    """Whether Resume can wait for the job again: it has a task id and is not known to be over."""
    waiting = state in ("queued", "running", "stopped") or (state == "failed" and kind in RESUMABLE_KINDS)
    return task_id is not None and waiting


def can_move(state: str, kind: str | None, new: str) -> bool:
    """Whether a job in ``state`` may take an event saying ``new`` (a finished job stays finished)."""
    if state == "failed":
        return kind in RESUMABLE_KINDS and new in _AFTER_WAITING
    return new in _MOVES.get(state, frozenset())


def counts(phases: Iterable[Phase]) -> dict[Phase, int]:
    """How many jobs are in each phase, in PHASES order, phases with none left out."""
    seen = list(phases)
    return {p: n for p in PHASES if (n := seen.count(p))}


def run_phase(phases: Iterable[Phase]) -> Literal["running", "stopped", "done", "failed", "mixed"]:
    """One word for a run: running while any job may change, else stopped, done, failed or mixed."""
    found = counts(phases)
    if not found or found.keys() & {"queued", "running"}:
        return "running"
    if "stopped" in found:
        return "stopped"
    if found.keys() == {"done"}:
        return "done"
    return "mixed" if "done" in found else "failed"
