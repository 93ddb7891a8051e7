"""The PostgreSQL history's schema: ordered migrations, how they are applied, and the SQL the store runs.

The schema version is the one row of ``schema_version``. ``migrate()`` takes a database from any older version
to ``SCHEMA_VERSION`` in one transaction, under an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg

from playground.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x706C6179  # pg_advisory_xact_lock key: one migrating replica at a time ("play")


def v1_history(db: psycopg.Connection) -> None:
    """Runs, jobs and state changes as the SQLite history has them at its version 4, and the kept inputs.

    Types are PostgreSQL's own (timestamptz, double precision); JSON stays text, read by the same code.
    Local inputs are rows here (the SQLite store keeps files): every replica can read them.
    """
    db.execute("""CREATE TABLE runs (run_id TEXT PRIMARY KEY, seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at TIMESTAMPTZ NOT NULL, kind TEXT NOT NULL, request_json TEXT, targets_json TEXT NOT NULL DEFAULT '[]',
        prompt TEXT NOT NULL DEFAULT '', owner TEXT, prompt_folded TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL DEFAULT 'running', job_states TEXT NOT NULL DEFAULT '', cost_usd DOUBLE PRECISION)""")
    db.execute("CREATE INDEX runs_by_time ON runs (created_at, seq) INCLUDE (prompt_folded)")  # a search reads this
    db.execute("CREATE INDEX runs_by_owner ON runs (owner, created_at, seq)")
    db.execute("CREATE INDEX runs_by_outcome ON runs (outcome, created_at, seq)")
    db.execute("""CREATE TABLE jobs (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, provider TEXT NOT NULL, model TEXT NOT NULL,
        task_id TEXT, state TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        latency_s DOUBLE PRECISION, cost_usd DOUBLE PRECISION, error TEXT, error_code TEXT, error_kind TEXT,
        result_url TEXT, result_path TEXT, sent_json TEXT, notes_json TEXT NOT NULL DEFAULT '[]',
        urls_json TEXT NOT NULL DEFAULT '{}', cost_source TEXT, UNIQUE (run_id, provider, model))""")
    db.execute("CREATE INDEX jobs_by_state ON jobs (state)")
    db.execute("CREATE INDEX jobs_by_task ON jobs (provider, task_id)")
    db.execute("""CREATE TABLE job_states (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, state TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
        elapsed_s DOUBLE PRECISION, message TEXT NOT NULL DEFAULT '')""")
    db.execute("CREATE INDEX states_by_job ON job_states (job_id)")
    db.execute("CREATE TABLE inputs (sha256 TEXT PRIMARY KEY, mime_type TEXT, content BYTEA NOT NULL)")


def v2_replicas(db: psycopg.Connection) -> None:
    """Replicas share the work: a job has an owner replica and a lease; callbacks for another's job wait here."""
    db.execute("ALTER TABLE jobs ADD COLUMN lease_owner TEXT, ADD COLUMN lease_until TIMESTAMPTZ")
    db.execute("CREATE INDEX jobs_by_lease ON jobs (lease_until) WHERE lease_until IS NOT NULL")
    db.execute("""CREATE TABLE deliveries (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        provider TEXT NOT NULL, task_id TEXT NOT NULL, delivery_id TEXT, status_json TEXT,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (provider, delivery_id))""")
    db.execute("CREATE INDEX deliveries_by_task ON deliveries (provider, task_id, id)")


def v3_prompt_search(db: psycopg.Connection) -> None:
    """A trigram index on the folded prompt, so a search for a rare word reads the few runs that have it.

    pg_trgm ships with PostgreSQL (contrib) and is a trusted extension; where it cannot be created the search
    still works, by reading the narrow (created_at, seq, prompt) index instead.
    """
    try:
        with db.transaction():  # a savepoint: a refusal here must not undo the other steps
            db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except psycopg.Error as exc:
        log.warning("pg_trgm is not available (%s); prompt search scans the runs' index instead", exc)
        return
    db.execute("CREATE INDEX runs_by_prompt_words ON runs USING gin (prompt_folded gin_trgm_ops)")


def v4_measurements(db: psycopg.Connection) -> None:
    """Jobs keep their whole result (latency interval, breakdown, the provider's own timings, size, format)."""
    db.execute("ALTER TABLE jobs ADD COLUMN result_json TEXT")
    db.execute("CREATE INDEX jobs_by_target ON jobs (provider, model, state)")


def v5_votes(db: psycopg.Connection) -> None:
    """Arena votes, as SQLite's v6: one row per pairwise outcome; a visitor votes once per round."""
    db.execute(
        """CREATE TABLE votes (id BIGSERIAL PRIMARY KEY, round_id TEXT NOT NULL, pair INTEGER NOT NULL,
        run_id TEXT NOT NULL, mode TEXT NOT NULL, prompt TEXT NOT NULL,
        a_provider TEXT NOT NULL, a_model TEXT NOT NULL, a_task_id TEXT,
        b_provider TEXT NOT NULL, b_model TEXT NOT NULL, b_task_id TEXT,
        outcome TEXT NOT NULL, choice TEXT NOT NULL, identical BOOLEAN NOT NULL DEFAULT false,
        shown INTEGER NOT NULL DEFAULT 2, owner TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
        UNIQUE (round_id, owner, pair))"""
    )
    db.execute("CREATE INDEX votes_by_owner ON votes (owner, at)")
    db.execute("CREATE INDEX votes_by_mode ON votes (mode, id)")


# Version N is the database after MIGRATIONS[:N]. Append only; never edit a released step. A change of the
# schema is a step here and one in sqlite_schema.MIGRATIONS (see playground/history/migrations.py).
MIGRATIONS: tuple[Callable[[psycopg.Connection], None], ...] = (
    v1_history,
    v2_replicas,
    v3_prompt_search,
    v4_measurements,
    v5_votes,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: psycopg.Connection) -> int:
    """Bring the database to SCHEMA_VERSION (one transaction); the version it had. ConfigError if it is newer."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"The history database has schema version {version}, newer than this playground "
                f"({SCHEMA_VERSION}); update the playground or point PLAYGROUND_DATABASE_URL elsewhere."
            )
        for step in MIGRATIONS[version:]:
            step(db)
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
    return version


LEASE_SQL = "lease_owner = %(replica)s, lease_until = now() + %(lease_s)s * interval '1 second'"
UPSERT_JOB_SQL = """INSERT INTO jobs (run_id, provider, model, task_id, state, created_at, updated_at, latency_s,
        cost_usd, cost_source, error, error_code, error_kind, result_url, result_path, sent_json, notes_json, urls_json,
        lease_owner, lease_until, result_json)
    VALUES (%(run_id)s, %(provider)s, %(model)s, %(task_id)s, %(state)s, %(at)s, %(at)s, %(latency_s)s, %(cost_usd)s,
        %(cost_source)s, %(error)s, %(error_code)s, %(error_kind)s, %(result_url)s, %(result_path)s,
        COALESCE(%(sent)s, %(result_sent)s), %(notes)s, %(urls)s, %(replica)s,
        CASE WHEN %(terminal)s THEN NULL ELSE now() + %(lease_s)s * interval '1 second' END, %(result)s)
    ON CONFLICT (run_id, provider, model) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
        task_id = COALESCE(excluded.task_id, jobs.task_id), latency_s = COALESCE(excluded.latency_s, jobs.latency_s),
        cost_usd = COALESCE(excluded.cost_usd, jobs.cost_usd),
        cost_source = COALESCE(excluded.cost_source, jobs.cost_source),
        error = excluded.error, error_code = excluded.error_code, error_kind = excluded.error_kind,
        result_url = COALESCE(excluded.result_url, jobs.result_url),
        result_path = COALESCE(excluded.result_path, jobs.result_path),
        sent_json = COALESCE(%(sent)s, jobs.sent_json, %(result_sent)s),
        notes_json = CASE WHEN %(notes)s = '[]' THEN jobs.notes_json ELSE %(notes)s END,
        urls_json = CASE WHEN %(urls)s = '{}' THEN jobs.urls_json ELSE %(urls)s END,
        lease_owner = excluded.lease_owner, lease_until = excluded.lease_until,
        result_json = COALESCE(excluded.result_json, jobs.result_json)
    RETURNING id"""
