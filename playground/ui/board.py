"""The state of one run as the page shows it: one PanelView per (provider, model), fed by JobEvents.

No gradio here: the handlers turn what changed into component updates. Every job moves as
playground.jobstate says (a finished job stays finished; a stopped one may run again when resumed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from playground import jobstate
from playground.derived import Changes
from playground.models import ASPECT_RATIOS, MODELS, JobEvent, JobResult, WireRequest
from playground.providers import ProviderSpec
from playground.ui.format import (
    Outcome,
    breakdown_text,
    failure_help,
    notes_markdown,
    result_facts,
    resume_hint,
    status_text,
)

ACTIVE_STATES = jobstate.ACTIVE_STATES
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
    resumed: bool = False
    unconfirmed_source: str | None = None  # the provider's price source, when that price is not confirmed
    tile: Path | None = None  # a small copy of the result for the grid
    changes: Changes | None = None  # what an edit changed, against the input
    shape_note: str | None = None  # set when this result's shape differs from the others'

    @property
    def key(self) -> PanelKey:
        return (self.provider, self.model)

    @property
    def is_active(self) -> bool:
        return jobstate.is_active(self.state)

    @property
    def phase(self) -> jobstate.Phase:
        return jobstate.phase(self.state, self.kind)

    @property
    def is_resumable(self) -> bool:
        """Stopped or timed out with a task id: Resume can wait for it again."""
        return not self.is_active and jobstate.is_resumable(self.state, self.kind, self.task_id)

    @property
    def price_confirmed(self) -> bool:
        source = self.result.cost_source if self.result else None
        return self.unconfirmed_source is None or source != self.unconfirmed_source

    def status_line(self) -> str:
        """The job's one status line, the same on its tile, its panel and in History."""
        return status_text(
            self.state,
            self.elapsed_s,
            error=self.error,
            task_id=self.task_id,
            kind=self.kind,
            resumed=self.resumed,
            result=self.result,
        )

    def info(self, *, sandbox: bool, mode: str = "text") -> str:
        """The panel's details as Markdown: facts of the result, what changed, what to do, notes."""
        parts = (
            [result_facts(self.result, confirmed=self.price_confirmed), breakdown_text(self.result, self.label)]
            if self.result
            else []
        )
        if self.changes is not None:
            parts.append(f"**Changed** {share_text(self.changes.share)} of the picture (beyond a small threshold).")
        if self.shape_note:
            parts.append(f"⚠ {self.shape_note}")
        if self.phase in ("failed", "canceled"):
            parts.append(failure_help(self.kind, self.key_env, sandbox=sandbox, mode=mode))
        if self.is_resumable and self.task_id:
            parts.append(resume_hint(self.task_id))
        parts.append(notes_markdown(self.notes))
        return "\n\n".join(part for part in parts if part)

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
            kind=self.kind,
        )


def share_text(share: float) -> str:
    """'12 %', '< 1 %'."""
    percent = share * 100
    return "< 1 %" if 0 < percent < 1 else f"{percent:.0f} %"


@dataclass
class Board:
    """Every panel of one run, what the input image was, and when the run started.

    ``edit``: the run edits an image (its panels show before/after and what changed).
    """

    panels: dict[PanelKey, PanelView]
    input_path: str | None = None
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(default=0.0)
    ended_at: float | None = None
    edit: bool = False
    run_id: str | None = None
    started_wall: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def start(
        cls,
        targets: Iterable[PanelKey],
        specs: Mapping[str, ProviderSpec],
        *,
        input_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        edit: bool | None = None,
    ) -> Board:
        """A board whose panels are all queued, in the order of ``targets``."""
        panels = {}
        for name, model in targets:
            spec = specs[name]
            panel = PanelView(name, model, spec.label, spec.key_env, started_at=clock())
            panel.unconfirmed_source = unconfirmed_source(spec, model)
            panels[(name, model)] = panel
        return cls(panels, input_path, clock, clock(), edit=input_path is not None if edit is None else edit)

    def reject(self, key: PanelKey, error: str, kind: str) -> None:
        """Mark a target that failed its checks: nothing was sent for it."""
        panel = self.panels[key]
        panel.state, panel.error, panel.kind = "failed", error, kind

    def apply(self, event: JobEvent) -> PanelKey | None:
        """Take one event into its panel; the panel's key, or None if the event is not for this board (or it
        would move a finished job)."""
        panel = self.panels.get((event.provider, event.model))
        if panel is None or not jobstate.can_move(panel.state, panel.kind, event.state):
            return None
        self.run_id = self.run_id or event.run_id
        if panel.state == "stopped" and event.state == "stopped":  # the create on its way gave its task id
            panel.task_id = event.task_id or panel.task_id
            return panel.key
        panel.state, panel.elapsed_s, panel.notes = event.state, event.elapsed_s, event.notes or panel.notes
        panel.started_at = self.clock() - event.elapsed_s
        panel.task_id = event.task_id or panel.task_id
        panel.sent = event.sent or panel.sent
        panel.result = event.result or panel.result
        panel.error, panel.kind, panel.resumed = event.error, event.kind, event.resumed
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

    def reopen(self) -> None:
        """The run goes on again (its stopped jobs are resumed): its end is not known any more."""
        self.ended_at = None

    @property
    def is_finished(self) -> bool:
        return not any(p.is_active for p in self.panels.values())

    @property
    def wall_s(self) -> float:
        return (self.ended_at or self.clock()) - self.started_at

    @property
    def resumable(self) -> list[PanelView]:
        return [p for p in self.panels.values() if p.is_resumable]

    def outcomes(self) -> list[Outcome]:
        return [p.outcome() for p in self.panels.values()]

    def mark_shapes(self) -> list[PanelKey]:
        """Note each result whose shape differs from most results' (by more than SHAPE_TOLERANCE); the keys of
        the panels whose note changed."""
        shapes = {p.key: p.result.width / p.result.height for p in self.panels.values() if p.result and p.result.height}
        common = _most_common_shape(list(shapes.values()))
        changed = []
        for key, panel in self.panels.items():
            shape = shapes.get(key)
            note = None
            if common is not None and shape is not None and abs(math.log(shape / common)) > SHAPE_TOLERANCE:
                note = f"Its shape is {ratio_name(shape)}; most results here are {ratio_name(common)}."
            if note != panel.shape_note:
                panel.shape_note = note
                changed.append(key)
        return changed


SHAPE_TOLERANCE = math.log(1.05)  # within 5 % of each other, two pictures have the same shape


def _most_common_shape(shapes: list[float]) -> float | None:
    """The shape most results share (within the tolerance); None with fewer than two results."""
    if len(shapes) < 2:
        return None
    return max(shapes, key=lambda s: sum(abs(math.log(s / other)) <= SHAPE_TOLERANCE for other in shapes))


def ratio_name(shape: float) -> str:
    """'16:9' for the known ratio nearest a width/height, or '1.85:1' when none is close."""
    name = min(ASPECT_RATIOS, key=lambda r: abs(math.log(_ratio(r) / shape)))
    return name if abs(math.log(_ratio(name) / shape)) <= SHAPE_TOLERANCE / 2 else f"{shape:.2f}:1"


def _ratio(name: str) -> float:
    w, h = (int(x) for x in name.split(":"))
    return w / h


def unconfirmed_source(spec: ProviderSpec, model: str) -> str | None:
    """The source of ``spec``'s price for ``model`` when the provider itself does not confirm that price."""
    price = spec.prices.get(model)
    return price.source if price is not None and not price.confirmed else None
