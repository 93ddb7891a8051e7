"""The state of one run as the page shows it: one PanelView per (provider, model), fed by JobEvents.

No gradio here: the handlers turn what changed into component updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from playground.models import MODELS, JobEvent, JobResult, WireRequest
from playground.providers import ProviderSpec
from playground.ui.format import Outcome, breakdown_text, failure_help, notes_markdown, result_facts, resume_hint

ACTIVE_STATES = frozenset({"queued", "running"})
PanelKey = tuple[str, str]
"""(provider name, model id)."""


def panel_keys(specs: Mapping[str, ProviderSpec]) -> list[PanelKey]:
    """Every panel a tab has, in page order: each provider with each model it serves."""
    return [(name, model) for name, spec in specs.items() for model in MODELS if spec.serves(model)]


@dataclass
class PanelView:
    """What one (provider, model) panel shows right now."""

    provider: str
    model: str
    label: str
    key_env: str
    state: str = "queued"
    elapsed_s: float = 0.0
    started_at: float | None = None
    task_id: str | None = None
    error: str | None = None
    kind: str | None = None
    notes: tuple[str, ...] = ()
    sent: WireRequest | None = None
    result: JobResult | None = None

    @property
    def key(self) -> PanelKey:
        return (self.provider, self.model)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def info(self, *, sandbox: bool) -> str:
        """The panel's details as Markdown: facts of the result, what to do about a failure, notes."""
        parts = [result_facts(self.result), breakdown_text(self.result, self.label)] if self.result else []
        if self.state in ("failed", "canceled"):
            parts.append(failure_help(self.kind, self.key_env, sandbox=sandbox))
        if self.task_id and (self.state == "stopped" or self.kind == "deadline"):
            parts.append(f"Task `{self.task_id}` may still finish; wait for it with {self._resume()}.")
        parts.append(notes_markdown(self.notes))
        return "\n\n".join(part for part in parts if part)

    def _resume(self) -> str:
        return resume_hint(self.provider, self.model, self.task_id or "")

    def outcome(self) -> Outcome:
        """This panel as the run summary sees it."""
        result = self.result
        return Outcome(
            label=self.label,
            model=self.model,
            state=self.state,
            latency_s=result.latency_s if result else None,
            cost_usd=result.cost_usd if result else None,
            error=self.error,
            latency_low_s=result.latency_low_s if result else None,
        )


@dataclass
class Board:
    """Every panel of one run, what the input image was, and when the run started."""

    panels: dict[PanelKey, PanelView]
    input_path: str | None = None
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(default=0.0)
    ended_at: float | None = None

    @classmethod
    def start(
        cls,
        targets: Iterable[PanelKey],
        specs: Mapping[str, ProviderSpec],
        *,
        input_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Board:
        """A board whose panels are all queued, in the order of ``targets``."""
        panels = {}
        for name, model in targets:
            spec = specs[name]
            panels[(name, model)] = PanelView(name, model, spec.label, spec.key_env, started_at=clock())
        return cls(panels, input_path, clock, clock())

    def reject(self, key: PanelKey, error: str, kind: str) -> None:
        """Mark a target that failed its checks: nothing was sent for it."""
        panel = self.panels[key]
        panel.state, panel.error, panel.kind = "failed", error, kind

    def apply(self, event: JobEvent) -> PanelKey | None:
        """Take one event into its panel; the panel's key, or None if the event is not for this board."""
        panel = self.panels.get((event.provider, event.model))
        if panel is None or panel.state == "stopped":
            return None
        panel.state, panel.elapsed_s, panel.notes = event.state, event.elapsed_s, event.notes
        panel.started_at = self.clock() - event.elapsed_s
        panel.task_id = event.task_id or panel.task_id
        panel.sent = event.sent or panel.sent
        panel.result = event.result or panel.result
        panel.error, panel.kind = event.error, event.kind
        if event.result is not None:
            panel.elapsed_s = event.result.latency_s
        return panel.key

    def tick(self) -> list[PanelKey]:
        """Advance the elapsed time of running panels; their keys."""
        running = [p for p in self.panels.values() if p.state == "running" and p.started_at is not None]
        for panel in running:
            panel.elapsed_s = self.clock() - (panel.started_at or 0.0)
        return [p.key for p in running]

    def stop(self) -> list[PanelKey]:
        """Mark every panel still queued or running as stopped; their keys."""
        active = [p for p in self.panels.values() if p.is_active]
        for panel in active:
            panel.elapsed_s = self.clock() - (panel.started_at or self.started_at)
            panel.state = "stopped"
        self.finish()
        return [p.key for p in active]

    def finish(self) -> None:
        """Note the end of the run (once)."""
        if self.ended_at is None:
            self.ended_at = self.clock()

    @property
    def is_finished(self) -> bool:
        return not any(p.is_active for p in self.panels.values())

    @property
    def wall_s(self) -> float:
        return (self.ended_at or self.clock()) - self.started_at

    def outcomes(self) -> list[Outcome]:
        return [p.outcome() for p in self.panels.values()]
