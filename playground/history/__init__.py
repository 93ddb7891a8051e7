"""The history: the interface every store implements, the records it returns, and how to open one.

The service, the CLI and the UI use only ``History``; ``SqliteHistory`` (one file under the data dir) is
the default store, ``PostgresHistory`` the one several replicas share (PLAYGROUND_DATABASE_URL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from playground.history.records import (
    OUTCOMES,
    JobFact,
    JobRecord,
    Outcome,
    RunRecord,
    RunSummary,
    StateChange,
    Vote,
    VoteMode,
    VoteOutcome,
)
from playground.history.sqlite import DB_NAME, INPUTS_DIR, SqliteHistory
from playground.models import GenerationRequest, JobEvent, JobResult
from playground.settings import Settings

if TYPE_CHECKING:
    from playground.history.postgres import PostgresHistory


class RunRecorder(Protocol):
    """What a run writes as it goes: its start, then each job event. Every History is one."""

    async def start_run(
        self,
        run_id: str,
        request: GenerationRequest,
        targets: Sequence[tuple[str, str]],
        *,
        kind: str = "generate",
        owner: str | None = None,
    ) -> None: ...

    async def record(self, event: JobEvent) -> None: ...


class History(Protocol):
    """Where runs, jobs and their state changes are kept. Every method is async and safe to await on the loop."""

    async def start_run(
        self,
        run_id: str,
        request: GenerationRequest,
        targets: Sequence[tuple[str, str]],
        *,
        kind: str = "generate",
        owner: str | None = None,
    ) -> None:
        """Keep a new run: its request and one queued job per (provider, model) target."""
        ...

    async def record(self, event: JobEvent) -> None:
        """Keep one job event: update the job, and append its state if the state changed."""
        ...

    async def list_runs(
        self,
        *,
        query: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        outcome: str | None = None,
        owner: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: str | None = None,
    ) -> list[RunSummary]:
        """Runs newest first, filtered; ``owner`` narrows to one browser's runs.

        ``after``: the ``cursor`` of the last run of the previous page (keyset paging, fast at any depth).
        A negative ``limit`` lists every match.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run with its jobs and their state changes, or None."""
        ...

    async def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs submitted and never ended (to resume after a restart)."""
        ...

    async def resumable_jobs(self, run_id: str) -> list[JobRecord]:
        """The run's jobs worth waiting for again: submitted, and not known to be over."""
        ...

    async def abandon_unsubmitted(self, reason: str) -> int:
        """Fail jobs that never got a task id (the process died first); how many."""
        ...

    async def results(self, provider: str, model: str, *, limit: int = 100) -> list[JobResult]:
        """The most recent successful results of one (provider, model), newest first."""
        ...

    async def finished_jobs(self, *, since: datetime | None = None, kind: str | None = None) -> list[JobRecord]:
        """Every job that ended (succeeded, failed, canceled), oldest first, of runs of ``kind`` since ``since``."""
        ...

    async def request_of(self, run_id: str) -> GenerationRequest:
        """The run's request, rebuilt for a re-run (KeyError when none is stored)."""
        ...

    async def record_votes(self, votes: Sequence[Vote]) -> None:
        """Keep one arena round's votes, all or none.

        Raises DuplicateVoteError (nothing kept) when the owner already voted on that round: a store enforces
        one vote per (round_id, owner, pair) itself, so the rule holds across processes.
        """
        ...

    async def list_votes(self, *, mode: str | None = None, owner: str | None = None) -> list[Vote]:
        """Votes in the order they were cast; ``mode`` ("t2i" or "edit") and ``owner`` narrow them."""
        ...

    async def count_voted_rounds(self, owner: str, since: datetime) -> int:
        """How many distinct rounds ``owner`` voted on at or after ``since``."""
        ...

    async def job_facts(self, *, kind: str | None = None) -> list[JobFact]:
        """Every job's provider, model, state, latency and cost; ``kind`` ("generate", "edit") narrows to runs."""
        ...

    async def aclose(self) -> None:
        """Release the store."""
        ...


def open_history(data_dir: Path | str) -> SqliteHistory:
    """The default store for a data dir (created or migrated on open)."""
    return SqliteHistory.open(data_dir)


def open_store(settings: Settings, **options: object) -> SqliteHistory | PostgresHistory:
    """The store the settings name: PostgreSQL at PLAYGROUND_DATABASE_URL, else SQLite in the data dir."""
    if settings.database_url:
        from playground.history.postgres import PostgresHistory

        return PostgresHistory.open(settings.database_url, settings.data_dir, **options)
    return SqliteHistory.open(settings.data_dir)


def __getattr__(name: str) -> Any:
    """``PostgresHistory`` on first use: psycopg takes a third of a second to import, and only a shared
    history (PLAYGROUND_DATABASE_URL) needs it."""
    if name == "PostgresHistory":
        from playground.history.postgres import PostgresHistory

        return PostgresHistory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DB_NAME",
    "INPUTS_DIR",
    "OUTCOMES",
    "History",
    "PostgresHistory",
    "JobFact",
    "JobRecord",
    "Outcome",
    "RunRecord",
    "RunRecorder",
    "RunSummary",
    "SqliteHistory",
    "StateChange",
    "Vote",
    "VoteMode",
    "VoteOutcome",
    "open_history",
    "open_store",
]
