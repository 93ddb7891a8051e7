"""What replicas share through PostgreSQL: leases on jobs, expired ones taken over, callbacks handed over.

Each job row carries its owner replica (``lease_owner``) and when the lease runs out (``lease_until``, on the
database's clock, the one clock every replica agrees on). A finished job has no lease. playground/replicas.py
drives these statements; they are here because they are SQL about the history's tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from playground.history.postgres import PostgresHistory
from playground.history.postgres_schema import LEASE_SQL
from playground.history.queries import TERMINAL_SQL
from playground.models import JobRef, JobStatus

CHANNEL = "playground_deliveries"
"""LISTEN/NOTIFY channel: a callback for a job was kept; its owner should look now. Payload: JSON (id, job)."""
DELIVERIES_KEPT_S = 86_400  # a delivery is only useful while someone may still wait for its job


@dataclass(frozen=True)
class Claimed:
    """A job taken over from a replica whose lease ran out: its run, and enough to find it by task id."""

    run_id: str
    job: JobRef


@dataclass(frozen=True)
class Delivery:
    """A verified callback kept for the job's owner; ``status`` None is an unsigned nudge (read the status)."""

    id: int
    provider: str
    task_id: str
    status: JobStatus | None


class SharedJobs:
    """The lease and hand-over statements of one replica, on its PostgresHistory."""

    def __init__(self, store: PostgresHistory) -> None:
        self.store = store

    @property
    def replica(self) -> str:
        return self.store.replica

    def _lease(self) -> dict[str, object]:
        return {"replica": self.store.replica, "lease_s": self.store.lease_s}

    async def renew(self, waiting: Sequence[tuple[str, str]]) -> int:
        """Extend our lease on the jobs we wait for (provider, task id) and on ours still being submitted."""
        params = self._lease() | {"providers": [p for p, _ in waiting], "tasks": [t for _, t in waiting]}
        async with self.store.transaction() as db:
            done = await db.execute(
                f"""UPDATE jobs SET {LEASE_SQL} WHERE lease_owner = %(replica)s AND lease_until IS NOT NULL
                AND (task_id IS NULL AND state = 'queued' OR (provider, task_id) IN
                    (SELECT * FROM unnest(%(providers)s::text[], %(tasks)s::text[])))""",
                params,
            )
            return done.rowcount

    async def claim_expired(self, limit: int = 50) -> list[Claimed]:
        """Take over submitted jobs whose owner's lease ran out; rows another replica is claiming are skipped."""
        async with self.store.transaction() as db:
            rows = await (
                await db.execute(
                    f"""WITH due AS (SELECT id FROM jobs WHERE lease_until < now() AND task_id IS NOT NULL
                        AND state NOT IN {TERMINAL_SQL} ORDER BY lease_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                    UPDATE jobs SET {LEASE_SQL} FROM due WHERE jobs.id = due.id
                    RETURNING jobs.run_id, jobs.provider, jobs.model, jobs.task_id, jobs.urls_json""",
                    self._lease() | {"limit": limit},
                )
            ).fetchall()
        return [
            Claimed(
                row["run_id"],
                JobRef(
                    provider=row["provider"],
                    model=row["model"],
                    task_id=row["task_id"],
                    urls=json.loads(row["urls_json"]),
                ),
            )
            for row in rows
        ]

    async def release(self, jobs: Sequence[JobRef]) -> None:
        """Drop our lease on jobs we cannot follow (no key here, say): nobody takes them over again."""
        async with self.store.transaction() as db:
            for job in jobs:
                await db.execute(
                    "UPDATE jobs SET lease_until = NULL WHERE provider = %s AND task_id = %s AND lease_owner = %s",
                    (job.provider, job.task_id, self.replica),
                )

    async def state_of(self, provider: str, task_id: str) -> str | None:
        """The stored state of the job with this task id, or None if the history has no such job."""
        rows = await self.store.fetch(
            "SELECT state FROM jobs WHERE provider = %s AND task_id = %s ORDER BY id DESC LIMIT 1", (provider, task_id)
        )
        return str(rows[0]["state"]) if rows else None

    async def keep_delivery(
        self, provider: str, task_id: str, delivery_id: str | None, status: JobStatus | None
    ) -> bool:
        """Keep a verified callback and NOTIFY the replicas (on commit); False when it is a repeated delivery."""
        payload = status.model_dump_json() if status is not None else None
        async with self.store.transaction() as db:
            row = await (
                await db.execute(
                    """INSERT INTO deliveries (provider, task_id, delivery_id, status_json) VALUES (%s, %s, %s, %s)
                    ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id""",
                    (provider, task_id, delivery_id, payload),
                )
            ).fetchone()
            if row is None:
                return False
            note = json.dumps({"id": row["id"], "provider": provider, "task_id": task_id})
            await db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, note))
            await db.execute(f"DELETE FROM deliveries WHERE received_at < now() - interval '{DELIVERIES_KEPT_S} s'")
        return True

    async def latest_delivery(self, provider: str, task_id: str) -> Delivery | None:
        """The newest callback kept for this job: a verified status if any came, else a nudge; None if none."""
        rows = await self.store.fetch(
            """SELECT id, provider, task_id, status_json FROM deliveries WHERE provider = %s AND task_id = %s
            ORDER BY status_json IS NOT NULL DESC, id DESC LIMIT 1""",
            (provider, task_id),
        )
        return _delivery(rows[0]) if rows else None

    async def delivery(self, delivery_id: int) -> Delivery | None:
        rows = await self.store.fetch(
            "SELECT id, provider, task_id, status_json FROM deliveries WHERE id = %s", (delivery_id,)
        )
        return _delivery(rows[0]) if rows else None


def _ref(row: dict[str, str]) -> JobRef:
    return JobRef(
        provider=row["provider"], model=row["model"], task_id=row["task_id"], urls=json.loads(row["urls_json"])
    )


def _delivery(row: dict[str, object]) -> Delivery:
    raw = row["status_json"]
    status = JobStatus.model_validate_json(str(raw)) if raw is not None else None
    return Delivery(int(str(row["id"])), str(row["provider"]), str(row["task_id"]), status)
