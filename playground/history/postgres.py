"""The PostgreSQL history: the same History interface as SQLite, in a database several replicas share.

Chosen by ``PLAYGROUND_DATABASE_URL=postgresql://...``. psycopg 3, async, through a small connection pool that
opens on first use (on the loop that uses it). Each write is one transaction; a job row is locked while an event
is recorded, so two replicas recording the same job cannot interleave. Local inputs are kept in the ``inputs``
table (one row per content) and copied to ``<data_dir>/inputs/`` when a run is opened, for the UI's before image.

Every write by a replica also stamps its lease on the jobs it touches (see playground/replicas.py): the owner
is whoever recorded the job last, and its lease runs out ``lease_s`` after that unless renewed.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from playground.errors import DuplicateVoteError, InvalidInputError, StoreError
from playground.history import queries
from playground.history.postgres_inputs import input_bytes, local_input, request_data
from playground.history.postgres_schema import UPSERT_JOB_SQL, migrate
from playground.history.queries import TERMINAL_SQL
from playground.history.records import JobFact, JobRecord, RunRecord, RunSummary, StateChange, Vote
from playground.models import GenerationRequest, InputImage, JobEvent, JobResult, WireRequest

LEASE_S = 30.0  # a replica that stops renewing loses its jobs this long after its last word
POOL_MAX = 10
Clock = Callable[[], datetime]
UPDATE_SUMMARY_SQL = queries.summary_sql(queries.POSTGRES)
RESULTS_SQL = """SELECT result_json FROM jobs WHERE provider = %s AND model = %s AND state = 'succeeded'
    AND result_json IS NOT NULL ORDER BY id DESC LIMIT %s"""
FINISHED_SQL = """SELECT {columns} FROM jobs j JOIN runs r ON r.run_id = j.run_id
    WHERE j.state IN ('succeeded', 'failed', 'canceled')
      AND (%(since)s::timestamptz IS NULL OR j.created_at >= %(since)s::timestamptz)
      AND (%(kind)s::text IS NULL OR r.kind = %(kind)s::text) ORDER BY j.id"""
JOB_COLUMNS = """j.id, j.run_id, j.provider, j.model, j.task_id, j.state, j.created_at, j.updated_at, j.latency_s,
    j.cost_usd, j.cost_source, j.error, j.error_code, j.error_kind, j.result_url, j.result_path, j.sent_json,
    j.notes_json, j.urls_json, j.result_json"""
FINISHED_SQL = FINISHED_SQL.format(columns=JOB_COLUMNS)


VOTE_COLUMNS = queries.VOTE_COLUMNS
INSERT_VOTE_SQL = f"""INSERT INTO votes ({", ".join(VOTE_COLUMNS)})
    VALUES ({", ".join(f"%({c})s" for c in VOTE_COLUMNS)})"""
VOTES_SQL = f"""SELECT {", ".join(VOTE_COLUMNS)} FROM votes
    WHERE (%(mode)s::text IS NULL OR mode = %(mode)s::text) AND (%(owner)s::text IS NULL OR owner = %(owner)s::text)
    ORDER BY id"""
JOB_FACTS_SQL = """SELECT j.provider, j.model, j.state, j.latency_s, j.cost_usd FROM jobs j
    JOIN runs r ON r.run_id = j.run_id WHERE (%(kind)s::text IS NULL OR r.kind = %(kind)s::text) ORDER BY j.id"""


def _now() -> datetime:
    return datetime.now(UTC)


def new_replica_id() -> str:
    """A name for this process among the replicas: host, pid and a random part (a restart is a new replica)."""
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class PostgresHistory:
    """Runs and jobs kept in PostgreSQL, behind the async History interface."""

    def __init__(
        self, url: str, data_dir: Path, *, clock: Clock = _now, replica: str | None = None, lease_s: float = LEASE_S
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.replica = replica or new_replica_id()
        self.lease_s = lease_s
        self._clock = clock
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def open(cls, url: str, data_dir: Path | str, **options: Any) -> PostgresHistory:
        """Connect once to create or migrate the schema; the pool itself opens on first use."""
        with psycopg.connect(url) as db:
            migrate(db)
        return cls(url, Path(data_dir), **options)

    async def pool(self) -> AsyncConnectionPool:
        """The connection pool, opened on the running loop the first time it is needed."""
        if self._pool is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    # prepare_threshold=None: every statement is planned for its own values (a rare search word
                    # takes the trigram index; a generic plan, made once for any word, would scan)
                    options = {"prepare_threshold": None}
                    pool = AsyncConnectionPool(self.url, min_size=1, max_size=POOL_MAX, open=False, kwargs=options)
                    await pool.open(wait=True)
                    self._pool = pool
        return self._pool

    async def aclose(self) -> None:
        """Close the pool once pending work is done."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """One transaction: committed whole, or rolled back whole on any exception.

        A database error arrives as StoreError, one sentence (as from the SQLite store); the URL, which may hold
        a password, is never in it.
        """
        try:
            async with (await self.pool()).connection() as db:
                db.row_factory = dict_row  # type: ignore[assignment]
                async with db.transaction():
                    yield db  # type: ignore[misc]
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"The shared history database (PLAYGROUND_DATABASE_URL) could not keep this ({reason}): check that "
                "PostgreSQL is up and has room, then try again."
            ) from exc

    async def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """The rows of one statement, in its own transaction."""
        async with self.transaction() as db:
            return await (await db.execute(sql, params)).fetchall()

    async def start_run(
        self,
        run_id: str,
        request: GenerationRequest,
        targets: Sequence[tuple[str, str]],
        *,
        kind: str = "generate",
        created_at: datetime | None = None,
        owner: str | None = None,
    ) -> None:
        """Keep a new run: the request (a local input kept once), and one queued job per target, leased to us."""
        if kind not in ("generate", "edit"):
            raise ValueError(f"run kind {kind!r} is not 'generate' or 'edit'")
        at = created_at or self._clock()
        lease = {"replica": self.replica, "lease_s": self.lease_s}
        async with self.transaction() as db:
            data = await request_data(db, request)
            await db.execute(
                """INSERT INTO runs (run_id, created_at, kind, prompt, prompt_folded, request_json, targets_json, owner)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET kind = excluded.kind,
                prompt = excluded.prompt, prompt_folded = excluded.prompt_folded, request_json = excluded.request_json,
                targets_json = excluded.targets_json, owner = excluded.owner""",
                (
                    run_id,
                    at,
                    kind,
                    request.prompt,
                    request.prompt.casefold(),
                    json.dumps(data),
                    _targets(targets),
                    owner,
                ),
            )
            for provider, model in dict.fromkeys(targets):
                await db.execute(
                    """INSERT INTO jobs (run_id, provider, model, state, created_at, updated_at, lease_owner,
                        lease_until) VALUES (%(run_id)s, %(provider)s, %(model)s, 'queued', %(at)s, %(at)s, %(replica)s,
                        now() + %(lease_s)s * interval '1 second') ON CONFLICT DO NOTHING""",
                    {"run_id": run_id, "provider": provider, "model": model, "at": at} | lease,
                )
            await db.execute(
                """INSERT INTO job_states (job_id, state, at) SELECT id, 'queued', %s FROM jobs j
                WHERE run_id = %s AND NOT EXISTS (SELECT 1 FROM job_states s WHERE s.job_id = j.id)""",
                (at, run_id),
            )
            await db.execute(UPDATE_SUMMARY_SQL, {"run_id": run_id})

    async def record(self, event: JobEvent, *, at: datetime | None = None) -> None:
        """Keep one job event: update the job (and our lease on it), append its state if the state changed.

        A repeated terminal event (a duplicate delivery, or two replicas finishing one job) changes nothing.
        """
        stamp = at or self._clock()
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO runs (run_id, created_at, kind) VALUES (%s, %s, 'resume') ON CONFLICT DO NOTHING",
                (event.run_id, stamp),
            )
            # The run first, then the job: writes to one run take turns, so its outcome sees every job's last state.
            await db.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (event.run_id,))
            found = await db.execute(
                "SELECT state FROM jobs WHERE run_id = %s AND provider = %s AND model = %s FOR UPDATE",
                (event.run_id, event.provider, event.model),
            )
            before = await found.fetchone()
            if before is not None and before["state"] == event.state and event.is_terminal:
                return
            params = queries.job_params(event, stamp) | {"replica": self.replica, "lease_s": self.lease_s}
            job = await (await db.execute(UPSERT_JOB_SQL, params)).fetchone()
            assert job is not None
            if before is None or before["state"] != event.state:
                await db.execute(
                    "INSERT INTO job_states (job_id, state, at, elapsed_s, message) VALUES (%s, %s, %s, %s, %s)",
                    (job["id"], event.state, stamp, event.elapsed_s, event.message),
                )
                await db.execute(UPDATE_SUMMARY_SQL, {"run_id": event.run_id})

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
        """Runs newest first, filtered (as SqliteHistory.list_runs); ``after`` continues from a run's cursor."""
        queries.check_outcome(outcome)
        sql, params = queries.list_sql(
            queries.POSTGRES,
            query=query,
            provider=provider,
            model=model,
            outcome=outcome,
            owner=owner,
            after=after,
            limit=limit,
            offset=offset,
        )
        return queries.summaries(await self.fetch(sql, params))

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run with its jobs and their state changes, or None if it is not in the history."""
        async with self.transaction() as db:
            row = await (await db.execute("SELECT * FROM runs WHERE run_id = %s", (run_id,))).fetchone()
            if row is None:
                return None
            jobs = await self._jobs(db, "j.run_id = %s", (run_id,))
        request = json.loads(row["request_json"]) if row["request_json"] else None
        stored = (request or {}).get("image") or {}
        (summary,) = queries.summaries([row])
        return RunRecord(
            **dict(summary),
            request=request,
            targets=tuple(tuple(t) for t in json.loads(row["targets_json"])),
            input_path=await local_input(self, stored["path"]) if stored.get("path") else None,
            jobs=tuple(jobs),
        )

    async def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs that were submitted (have a task id) and never reached a terminal state."""
        async with self.transaction() as db:
            return await self._jobs(db, f"j.task_id IS NOT NULL AND j.state NOT IN {TERMINAL_SQL}", ())

    async def resumable_jobs(self, run_id: str) -> list[JobRecord]:
        """The run's jobs worth waiting for again: submitted, and not known to be over (JobRecord.is_resumable)."""
        async with self.transaction() as db:
            return [job for job in await self._jobs(db, "j.run_id = %s", (run_id,)) if job.is_resumable]

    async def abandon_unsubmitted(self, reason: str, *, expired_only: bool = False) -> int:
        """Fail jobs that never got a task id (their process died first); how many.

        ``expired_only``: only those whose owner's lease ran out (other replicas may be submitting theirs now).
        """
        where = f"task_id IS NULL AND state NOT IN {TERMINAL_SQL}"
        where += " AND (lease_until IS NULL OR lease_until < now())" if expired_only else ""
        stamp = self._clock()
        async with self.transaction() as db:
            runs = [
                row["run_id"] for row in await (await db.execute(f"SELECT run_id FROM jobs WHERE {where}")).fetchall()
            ]
            await db.execute(  # runs before jobs, in one order, as record() takes them
                "SELECT 1 FROM runs WHERE run_id = ANY(%s) ORDER BY run_id FOR UPDATE", (sorted(set(runs)),)
            )
            rows = await (
                await db.execute(
                    f"""UPDATE jobs SET state = 'failed', error = %s, error_kind = 'abandoned', updated_at = %s,
                    lease_until = NULL WHERE {where} AND run_id = ANY(%s) RETURNING id, run_id""",
                    (reason, stamp, runs),
                )
            ).fetchall()
            for row in rows:
                await db.execute(
                    "INSERT INTO job_states (job_id, state, at, message) VALUES (%s, 'failed', %s, %s)",
                    (row["id"], stamp, reason),
                )
            for run_id in {row["run_id"] for row in rows}:
                await db.execute(UPDATE_SUMMARY_SQL, {"run_id": run_id})
        return len(rows)

    async def results(self, provider: str, model: str, *, limit: int = 100) -> list[JobResult]:
        """The most recent successful results of one (provider, model), newest first (to learn its timing)."""
        rows = await self.fetch(RESULTS_SQL, (provider, model, limit))
        return [result for row in rows if (result := queries.result_of(row["result_json"], None)) is not None]

    async def finished_jobs(self, *, since: datetime | None = None, kind: str | None = None) -> list[JobRecord]:
        """Every job that ended (succeeded, failed, canceled), oldest first; without state changes (for stats)."""
        rows = await self.fetch(FINISHED_SQL, {"since": since, "kind": kind})
        return [job_record(row, []) for row in rows]

    async def request_of(self, run_id: str) -> GenerationRequest:
        """The run's request, rebuilt for a re-run; a local input is read back from the inputs table."""
        rows = await self.fetch("SELECT request_json FROM runs WHERE run_id = %s", (run_id,))
        if not rows or rows[0]["request_json"] is None:
            raise KeyError(f"no request stored for run {run_id}")
        data = json.loads(rows[0]["request_json"])
        image = data.get("image")
        if image and image.get("path"):
            path = image.pop("path")
            content = await input_bytes(self, path)
            if content is None:
                raise InvalidInputError(f"The input image of run {run_id} ({path}) is no longer in the history.")
            data["image"] = InputImage(content=content, **image)
        return GenerationRequest.model_validate(data)

    # --- arena votes ---------------------------------------------------------------------------------

    async def record_votes(self, votes: Sequence[Vote]) -> None:
        """Keep one round's votes, all or none; DuplicateVoteError if this owner already voted on the round."""
        try:
            async with self.transaction() as db:
                async with db.cursor() as cursor:
                    await cursor.executemany(INSERT_VOTE_SQL, [vote.model_dump() for vote in votes])
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise DuplicateVoteError() from None
            raise

    async def list_votes(self, *, mode: str | None = None, owner: str | None = None) -> list[Vote]:
        """Votes in the order they were cast, optionally of one mode ("t2i", "edit") or one owner."""
        rows = await self.fetch(VOTES_SQL, {"mode": mode, "owner": owner})
        return [Vote(**row) for row in rows]

    async def count_voted_rounds(self, owner: str, since: datetime) -> int:
        """How many rounds ``owner`` voted on at or after ``since`` (for the arena's rate limit)."""
        rows = await self.fetch(
            "SELECT COUNT(DISTINCT round_id) AS n FROM votes WHERE owner = %s AND at >= %s", (owner, since)
        )
        return int(rows[0]["n"])

    async def job_facts(self, *, kind: str | None = None) -> list[JobFact]:
        """Every job's target, state, latency and cost, optionally of runs of one kind ("generate", "edit")."""
        return [JobFact(**row) for row in await self.fetch(JOB_FACTS_SQL, {"kind": kind})]

    async def _jobs(self, db: psycopg.AsyncConnection[Any], where: str, params: Any) -> list[JobRecord]:
        jobs = await (
            await db.execute(f"SELECT {JOB_COLUMNS} FROM jobs j WHERE {where} ORDER BY j.id", params)
        ).fetchall()
        states = await (
            await db.execute(
                f"SELECT s.* FROM job_states s JOIN jobs j ON j.id = s.job_id WHERE {where} ORDER BY s.id", params
            )
        ).fetchall()
        changes: dict[int, list[StateChange]] = {}
        for s in states:
            changes.setdefault(s["job_id"], []).append(
                StateChange(state=s["state"], at=s["at"], elapsed_s=s["elapsed_s"], message=s["message"])
            )
        return [job_record(row, changes.get(row["id"], [])) for row in jobs]


def _targets(targets: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(t) for t in targets])


def job_record(row: dict[str, Any], changes: list[StateChange]) -> JobRecord:
    """A stored job row as the interface returns it."""
    return JobRecord(
        **{k: v for k, v in row.items() if k not in ("id", "sent_json", "notes_json", "urls_json", "result_json")},
        sent=(sent := WireRequest.model_validate_json(row["sent_json"]) if row["sent_json"] else None),
        notes=tuple(json.loads(row["notes_json"])),
        urls=json.loads(row["urls_json"]),
        changes=tuple(changes),
        result=queries.result_of(row.get("result_json"), sent),
    )
