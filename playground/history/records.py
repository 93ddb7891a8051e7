"""What the history keeps, as every store returns it: runs, jobs, their state changes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from playground import jobstate
from playground.models import JobRef, JobResult, JobState, ModelId, WireRequest

Outcome = Literal["succeeded", "failed", "mixed", "stopped", "running"]
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "failed", "mixed", "stopped", "running")
RESUMABLE_KINDS = jobstate.RESUMABLE_KINDS  # failed only because we stopped waiting


class StateChange(BaseModel):
    """One entry in a job's life: the state it entered, when (UTC), and what was said."""

    model_config = ConfigDict(frozen=True)

    state: JobState
    at: datetime
    elapsed_s: float | None = None
    message: str = ""


class JobRecord(BaseModel):
    """One (provider, model) job of a run, as stored."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    provider: str
    model: ModelId
    state: JobState
    task_id: str | None = None
    urls: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    latency_s: float | None = None
    cost_usd: float | None = None
    cost_source: str | None = None
    error: str | None = None
    error_code: str | None = None
    error_kind: str | None = None
    result_url: str | None = None
    result_path: str | None = None
    sent: WireRequest | None = None
    notes: tuple[str, ...] = ()
    changes: tuple[StateChange, ...] = ()
    result: JobResult | None = None
    """The whole result as it was measured (kept since schema v4; None for older jobs and failures)."""

    @property
    def is_resumable(self) -> bool:
        """Submitted, and not known to be over: unfinished, stopped, or failed only because we stopped waiting."""
        return jobstate.is_resumable(self.state, self.error_kind, self.task_id)

    def ref(self) -> JobRef | None:
        """Enough to resume the job by its task id, or None if it was never submitted."""
        if self.task_id is None:
            return None
        return JobRef(
            provider=self.provider, model=self.model, task_id=self.task_id, urls=self.urls, submitted_at=self.created_at
        )


class RunSummary(BaseModel):
    """One line of the history list: a run, its prompt, and how its jobs ended."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    created_at: datetime
    kind: str
    prompt: str
    outcome: Outcome
    job_states: tuple[tuple[str, str, JobState], ...]  # (provider, model, state), sorted
    cost_usd: float | None = None
    cursor: str | None = None  # opaque: list_runs(after=cursor) continues the list after this run


class RunRecord(RunSummary):
    """One run in full: the stored request, its targets and every job with its state changes."""

    request: dict[str, Any] | None
    targets: tuple[tuple[str, str], ...]
    input_path: Path | None = None
    jobs: tuple[JobRecord, ...] = ()


VoteOutcome = Literal["a", "b", "tie", "both_bad"]
VoteMode = Literal["t2i", "edit"]


class Vote(BaseModel):
    """One pairwise outcome of an arena round, as kept: side ``a`` against side ``b``.

    A two-image round gives one vote; an N-image pick gives N-1 votes, the pick (``a``) winning against each
    other image (``pair`` numbers them). ``choice`` is what the visitor clicked ("A", "B", ..., "tie",
    "both_bad"); ``outcome`` is what counts ("tie" when the images were byte-identical). Task ids are the
    providers' job ids; (run_id, provider, model) is the job in this history.
    """

    model_config = ConfigDict(frozen=True)

    round_id: str
    pair: int = 0
    run_id: str
    mode: VoteMode
    prompt: str
    a_provider: str
    a_model: ModelId
    a_task_id: str | None = None
    b_provider: str
    b_model: ModelId
    b_task_id: str | None = None
    outcome: VoteOutcome
    choice: str
    identical: bool = False
    shown: int = 2
    owner: str
    at: datetime


class JobFact(BaseModel):
    """What the board needs of one past job: its target, how it ended, how long it took, what it cost."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    state: JobState
    latency_s: float | None = None
    cost_usd: float | None = None
