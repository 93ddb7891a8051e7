"""The SQLite history: every run and job in one file, so results outlive URLs and processes.

One file, ``<data_dir>/history.sqlite3`` (WAL mode). A local input image is copied once to
``<data_dir>/inputs/<sha256>.<ext>`` and the stored request names that path, never the bytes.
Each write is one transaction (job events that arrive together share one): a failure in the middle leaves
nothing behind. The schema version is ``PRAGMA user_version``; ``MIGRATIONS`` takes an older file to the
current version, in order.

The API is async, as the History interface says; the work happens on one worker thread of the store's
own, so the event loop never waits for the disk or for another process's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from playground.errors import ConfigError, DuplicateVoteError, InvalidInputError
from playground.history import queries
from playground.history.queries import TERMINAL_SQL
from playground.history.records import JobFact, JobRecord, RunRecord, RunSummary, StateChange, Vote
from playground.history.sqlite_health import BUSY_TIMEOUT_MS, ensure_data_dir, store_error
from playground.history.sqlite_schema import (
    DURATIONS_SQL,
    FINISHED_JOBS_SQL,
    MIGRATIONS,
    SCHEMA_VERSION,
    UPSERT_JOB_SQL,
)
from playground.history.sqlite_votes import count_rounds, insert_votes, select_job_facts, select_votes
from playground.images import EXTENSIONS
from playground.models import GenerationRequest, InputImage, JobEvent, JobResult, WireRequest

DB_NAME = "history.sqlite3"
INPUTS_DIR = "inputs"
UPDATE_SUMMARY_SQL = queries.summary_sql(queries.SQLITE)
Clock = Callable[[], datetime]
P = ParamSpec("P")
R = TypeVar("R")


def in_worker(
    method: Callable[Concatenate[SqliteHistory, P], R],
) -> Callable[Concatenate[SqliteHistory, P], Coroutine[Any, Any, R]]:
    """Make a store method async: it runs on the store's worker thread, off the event loop."""

    @functools.wraps(method)
    async def call(store: SqliteHistory, /, *args: P.args, **kwargs: P.kwargs) -> R:
        work = functools.partial(store._sentences, method, store, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(store._worker, work)

    return call


@dataclass(frozen=True)
class _Pending:
    """One event waiting for a group commit, and how to tell its caller."""

    event: JobEvent
    stamp: str
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]


def _settle(outcomes: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for done, error in outcomes:
        if done.done():  # its caller was cancelled; the event is kept all the same
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """UTC, fixed width, so text order is time order."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteHistory:
    """Runs and jobs kept in SQLite, behind the async History interface (one worker thread, one connection)."""

    def __init__(self, db: sqlite3.Connection, data_dir: Path, *, clock: Clock = _now) -> None:
        self._db = db
        self.data_dir = data_dir
        self._clock = clock
        self._lock = threading.RLock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._pending: list[_Pending] = []  # events waiting for the next group commit
        self._pending_lock = threading.Lock()
        self._draining = False  # a group commit is queued on the worker and has not taken the events yet

    @classmethod
    def open(cls, data_dir: Path | str, *, clock: Clock = _now) -> SqliteHistory:
        """Open (creating or migrating) ``<data_dir>/history.sqlite3``.

        StoreError, one sentence naming the file and what to do, when it cannot be used (corrupt, locked, not a
        database, a data dir that is a file); several processes opening a new file at once is safe.
        """
        root = ensure_data_dir(data_dir)
        try:
            db = sqlite3.connect(root / DB_NAME, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise store_error(root / DB_NAME, exc) from None
        store = cls(db, root, clock=clock)
        try:
            store._sentences(store._prepare)
        except BaseException:
            db.close()
            raise
        return store

    def _prepare(self) -> None:
        db = self._db
        db.row_factory = sqlite3.Row
        db.create_function("casefold", 1, lambda s: s.casefold() if isinstance(s, str) else s, deterministic=True)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # first: the pragmas below may wait for a lock
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
            db.execute(f"PRAGMA {pragma}")
        self._migrate()

    def _sentences(self, method: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``method``, turning a database error into StoreError: one sentence naming the file."""
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        self._worker.shutdown(wait=True)
        with self._lock:
            self._db.close()

    async def aclose(self) -> None:
        """Close the database once pending work is done."""
        await asyncio.to_thread(self.close)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / DB_NAME

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed whole, or rolled back whole on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        """Take the file to SCHEMA_VERSION one step per transaction, reading the version inside it: another
        process migrating the same new file at the same time is waited for, and its steps are not done twice."""
        while True:
            with self._write() as db:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise ConfigError(
                        f"The history file {self.path} has schema version {version}, newer than this playground "
                        f"({SCHEMA_VERSION}); update the playground or point PLAYGROUND_DATA_DIR elsewhere."
                    )
                if version == SCHEMA_VERSION:
                    return
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version = {version + 1}")

    @in_worker
    def start_run(
        self,
        run_id: str,
        request: GenerationRequest,
        targets: Sequence[tuple[str, str]],
        *,
        kind: str = "generate",
        created_at: datetime | None = None,
        owner: str | None = None,
    ) -> None:
        """Keep a new run: the request (a local input copied once), and one queued job per target.

        ``owner`` is an opaque id (a browser's); list_runs(owner=...) then shows only that owner's runs.
        """
        if kind not in ("generate", "edit"):
            raise ValueError(f"run kind {kind!r} is not 'generate' or 'edit'")
        at = _iso(created_at or self._clock())
        request_json = json.dumps(self._request_data(request))
        with self._write() as db:
            db.execute(
                """INSERT INTO runs (run_id, created_at, kind, prompt, prompt_folded, request_json, targets_json, owner)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET kind = excluded.kind,
                prompt = excluded.prompt, prompt_folded = excluded.prompt_folded, request_json = excluded.request_json,
                targets_json = excluded.targets_json, owner = excluded.owner""",
                (run_id, at, kind, request.prompt, request.prompt.casefold(), request_json, _targets(targets), owner),
            )
            db.executemany(
                """INSERT INTO jobs (run_id, provider, model, state, created_at, updated_at)
                VALUES (?, ?, ?, 'queued', ?, ?) ON CONFLICT DO NOTHING""",
                [(run_id, provider, model, at, at) for provider, model in dict.fromkeys(targets)],
            )
            db.execute(
                """INSERT INTO job_states (job_id, state, at) SELECT id, 'queued', ? FROM jobs j
                WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM job_states s WHERE s.job_id = j.id)""",
                (at, run_id),
            )
            db.execute(UPDATE_SUMMARY_SQL, {"run_id": run_id})

    async def record(self, event: JobEvent, *, at: datetime | None = None) -> None:
        """Keep one job event: update the job, and append its state if the state changed.

        A repeated terminal event (a duplicate delivery) changes nothing. Events that arrive while the worker
        is busy are committed together, in one transaction (a group commit): each call still returns only once
        its own event is on disk, and an event that cannot be kept fails alone.
        """
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self._pending_lock:
            self._pending.append(_Pending(event, _iso(at or self._clock()), loop, done))
            idle, self._draining = not self._draining, True
        if idle:
            try:
                self._worker.submit(self._keep_pending)
            except RuntimeError:  # closed: nothing will write what is waiting
                with self._pending_lock:
                    self._pending, self._draining = [], False
                raise
        await done

    def _keep_pending(self) -> None:
        """On the worker: write every event waiting now in one transaction, and tell each caller how it went."""
        with self._pending_lock:
            batch, self._pending, self._draining = self._pending, [], False
        try:
            outcomes = self._write_batch(batch)
        except BaseException as exc:  # a bug, not the database: every caller hears it
            outcomes = [exc] * len(batch)
        for loop in {item.loop for item in batch}:
            mine = [(item.done, outcome) for item, outcome in zip(batch, outcomes, strict=True) if item.loop is loop]
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, mine)

    def _write_batch(self, batch: Sequence[_Pending]) -> list[BaseException | None]:
        try:
            with self._write() as db:
                runs = {item.event.run_id for item in batch if self._keep_one(db, item.event, item.stamp)}
                for run_id in runs:
                    db.execute(UPDATE_SUMMARY_SQL, {"run_id": run_id})
            return [None] * len(batch)
        except Exception as exc:
            # The database itself (locked, full, unreadable) fails every event alike; otherwise one event was
            # refused (its data, or a bug it hit): write them one by one, so only that one fails.
            if len(batch) == 1 or isinstance(exc, sqlite3.OperationalError):
                return [store_error(self.path, exc) if isinstance(exc, sqlite3.Error) else exc] * len(batch)
        return [self._write_batch([item])[0] for item in batch]

    @staticmethod
    def _keep_one(db: sqlite3.Connection, event: JobEvent, stamp: str) -> bool:
        """Write one event inside the caller's transaction; True when its run's summary needs updating."""
        db.execute(
            "INSERT INTO runs (run_id, created_at, kind) VALUES (?, ?, 'resume') ON CONFLICT DO NOTHING",
            (event.run_id, stamp),
        )
        before = db.execute(
            "SELECT state FROM jobs WHERE run_id = ? AND provider = ? AND model = ?",
            (event.run_id, event.provider, event.model),
        ).fetchone()
        if before is not None and before[0] == event.state and event.is_terminal:
            return False
        job_id = db.execute(UPSERT_JOB_SQL, queries.job_params(event, stamp)).fetchone()[0]
        if before is not None and before[0] == event.state:
            return False
        db.execute(
            "INSERT INTO job_states (job_id, state, at, elapsed_s, message) VALUES (?, ?, ?, ?, ?)",
            (job_id, event.state, stamp, event.elapsed_s, event.message),
        )
        return True

    @in_worker
    def list_runs(
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
        """Runs newest first; ``query`` is a case-insensitive substring of the prompt; ``owner`` narrows to one.

        ``after`` is the ``cursor`` of the last run of a page: the next page starts after it (fast at any depth).
        """
        queries.check_outcome(outcome)
        filters = dict(query=query, provider=provider, model=model, outcome=outcome, owner=owner, after=after)
        return self._runs(**filters, limit=limit, offset=offset)

    @in_worker
    def get_run(self, run_id: str) -> RunRecord | None:
        """One run with its jobs and their state changes, or None if it is not in the history."""
        with self._lock:
            row = self._db.execute("SELECT r.*, r.rowid AS seq FROM runs r WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            jobs = self._jobs("j.run_id = ?", (run_id,))
        request = json.loads(row["request_json"]) if row["request_json"] else None
        stored = (request or {}).get("image") or {}
        (summary,) = queries.summaries([row])
        return RunRecord(
            **dict(summary),
            request=request,
            targets=tuple(tuple(t) for t in json.loads(row["targets_json"])),
            input_path=self.data_dir / stored["path"] if stored.get("path") else None,
            jobs=tuple(jobs),
        )

    @in_worker
    def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs that were submitted (have a task id) and never reached a terminal state: resume these."""
        with self._lock:
            return self._jobs(f"j.task_id IS NOT NULL AND j.state NOT IN {TERMINAL_SQL}", ())

    @in_worker
    def abandon_unsubmitted(self, reason: str) -> int:
        """Fail jobs that never got a task id (the process died first); returns how many. Run at start."""
        stamp = _iso(self._clock())
        with self._write() as db:
            rows = db.execute(
                f"SELECT id, run_id FROM jobs WHERE task_id IS NULL AND state NOT IN {TERMINAL_SQL}"
            ).fetchall()
            for job_id, run_id in rows:
                db.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, error_kind = 'abandoned', updated_at = ?"
                    " WHERE id = ?",
                    (reason, stamp, job_id),
                )
                db.execute(
                    "INSERT INTO job_states (job_id, state, at, message) VALUES (?, 'failed', ?, ?)",
                    (job_id, stamp, reason),
                )
                db.execute(UPDATE_SUMMARY_SQL, {"run_id": run_id})
        return len(rows)

    @in_worker
    def resumable_jobs(self, run_id: str) -> list[JobRecord]:
        """The run's jobs worth waiting for again: submitted, and not known to be over (JobRecord.is_resumable)."""
        with self._lock:
            return [job for job in self._jobs("j.run_id = ?", (run_id,)) if job.is_resumable]

    @in_worker
    def results(self, provider: str, model: str, *, limit: int = 100) -> list[JobResult]:
        """The most recent successful results of one (provider, model), newest first (to learn its timing)."""
        with self._lock:
            rows = self._db.execute(DURATIONS_SQL, (provider, model, limit)).fetchall()
        return [result for (raw,) in rows if (result := queries.result_of(raw, None)) is not None]

    @in_worker
    def finished_jobs(self, *, since: datetime | None = None, kind: str | None = None) -> list[JobRecord]:
        """Every job that ended (succeeded, failed, canceled), oldest first; without state changes (for stats)."""
        params = {"since": _iso(since) if since else None, "kind": kind}
        with self._lock:
            rows = self._db.execute(FINISHED_JOBS_SQL, params).fetchall()
        return [_job(row, []) for row in rows]

    @in_worker
    def request_of(self, run_id: str) -> GenerationRequest:
        """The run's request, rebuilt for a re-run; a local input is read back from its copy."""
        with self._lock:
            row = self._db.execute("SELECT request_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"no request stored for run {run_id}")
        data = json.loads(row[0])
        image = data.get("image")
        if image and image.get("path"):
            copy = self.data_dir / image.pop("path")
            if not copy.is_file():
                raise InvalidInputError(f"The input image of run {run_id} was kept at {copy}, which no longer exists.")
            data["image"] = InputImage(content=copy.read_bytes(), **image)
        return GenerationRequest.model_validate(data)

    # --- arena votes (SQL in sqlite_votes.py) ----------------------------------------------------------

    @in_worker
    def record_votes(self, votes: Sequence[Vote]) -> None:
        """Keep one round's votes, all or none; DuplicateVoteError if this owner already voted on the round."""
        try:
            with self._write() as db:
                insert_votes(db, [(vote, _iso(vote.at)) for vote in votes])
        except sqlite3.IntegrityError:
            raise DuplicateVoteError() from None

    @in_worker
    def list_votes(self, *, mode: str | None = None, owner: str | None = None) -> list[Vote]:
        """Votes in the order they were cast, optionally of one mode ("t2i", "edit") or one owner."""
        with self._lock:
            return select_votes(self._db, mode=mode, owner=owner)

    @in_worker
    def count_voted_rounds(self, owner: str, since: datetime) -> int:
        """How many rounds ``owner`` voted on at or after ``since`` (for the arena's rate limit)."""
        with self._lock:
            return count_rounds(self._db, owner, _iso(since))

    @in_worker
    def job_facts(self, *, kind: str | None = None) -> list[JobFact]:
        """Every job's target, state, latency and cost, optionally of runs of one kind ("generate", "edit")."""
        with self._lock:
            return select_job_facts(self._db, kind)

    def _runs(self, **filters: Any) -> list[RunSummary]:
        sql, params = queries.list_sql(queries.SQLITE, **filters)
        with self._lock:
            return queries.summaries(self._db.execute(sql, params).fetchall())

    def _jobs(self, where: str, params: tuple[Any, ...]) -> list[JobRecord]:
        jobs = self._db.execute(f"SELECT j.* FROM jobs j WHERE {where} ORDER BY j.id", params).fetchall()
        states = self._db.execute(
            f"SELECT s.* FROM job_states s JOIN jobs j ON j.id = s.job_id WHERE {where} ORDER BY s.id", params
        ).fetchall()
        changes: dict[int, list[StateChange]] = {}
        for s in states:
            changes.setdefault(s["job_id"], []).append(
                StateChange(state=s["state"], at=s["at"], elapsed_s=s["elapsed_s"], message=s["message"])
            )
        return [_job(row, changes.get(row["id"], [])) for row in jobs]

    def _request_data(self, request: GenerationRequest) -> dict[str, Any]:
        data = request.model_dump(mode="json", exclude={"image": {"content"}})
        if request.image is not None and request.image.content is not None:
            data["image"]["path"] = self._keep_input(request.image).relative_to(self.data_dir).as_posix()
        return data

    def _keep_input(self, image: InputImage) -> Path:
        """Copy a local input once, named by its content; write-then-rename so a crash leaves no half file."""
        content = image.content or b""
        ext = EXTENSIONS.get(image.mime_type or "") or Path(image.filename).suffix.lstrip(".").lower() or "bin"
        path = self.data_dir / INPUTS_DIR / f"{hashlib.sha256(content).hexdigest()}.{ext}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
            tmp.write_bytes(content)
            os.replace(tmp, path)
        return path


def _job(row: sqlite3.Row, changes: list[StateChange]) -> JobRecord:
    sent = WireRequest.model_validate_json(row["sent_json"]) if row["sent_json"] else None
    return JobRecord(
        **{k: row[k] for k in row.keys() if k not in ("id", "sent_json", "notes_json", "urls_json", "result_json")},
        sent=sent,
        notes=tuple(json.loads(row["notes_json"])),
        urls=json.loads(row["urls_json"]),
        changes=tuple(changes),
        result=queries.result_of(row["result_json"], sent),
    )


def _targets(targets: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(t) for t in targets])
