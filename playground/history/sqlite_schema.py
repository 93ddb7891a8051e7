"""The history database's schema: ordered migrations and the SQL the store runs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from playground.history.queries import SQLITE, VOTE_COLUMNS, summary_sql


def v1_tables(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE runs (run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, kind TEXT NOT NULL,
        request_json TEXT, targets_json TEXT NOT NULL DEFAULT '[]')""")
    db.execute("""CREATE TABLE jobs (id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, provider TEXT NOT NULL, model TEXT NOT NULL,
        task_id TEXT, state TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, latency_s REAL,
        cost_usd REAL, error TEXT, error_code TEXT, error_kind TEXT, result_url TEXT, result_path TEXT,
        sent_json TEXT, notes_json TEXT NOT NULL DEFAULT '[]', UNIQUE (run_id, provider, model))""")
    db.execute("""CREATE TABLE job_states (id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, state TEXT NOT NULL, at TEXT NOT NULL,
        elapsed_s REAL, message TEXT NOT NULL DEFAULT '')""")


def v2_search_and_resume(db: sqlite3.Connection) -> None:
    """The prompt gets a column (search without parsing JSON); jobs keep their URLs (resume) and price source."""
    db.execute("ALTER TABLE runs ADD COLUMN prompt TEXT NOT NULL DEFAULT ''")
    for run_id, raw in db.execute("SELECT run_id, request_json FROM runs").fetchall():
        prompt = json.loads(raw).get("prompt", "") if raw else ""
        db.execute("UPDATE runs SET prompt = ? WHERE run_id = ?", (prompt, run_id))
    db.execute("ALTER TABLE jobs ADD COLUMN urls_json TEXT NOT NULL DEFAULT '{}'")
    db.execute("ALTER TABLE jobs ADD COLUMN cost_source TEXT")
    db.execute("CREATE INDEX runs_by_time ON runs (created_at)")
    db.execute("CREATE INDEX jobs_by_state ON jobs (state)")
    db.execute("CREATE INDEX states_by_job ON job_states (job_id)")


def v3_owner(db: sqlite3.Connection) -> None:
    """Runs remember an opaque owner (a browser's id), so a shared page shows each visitor only their runs."""
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    db.execute("CREATE INDEX runs_by_owner ON runs (owner)")


def v4_fast_list(db: sqlite3.Connection) -> None:
    """The list stays fast as the history grows: each run keeps what the list shows of it (outcome, its jobs'
    states, their cost) and its case-folded prompt, and the list's filters walk indexes newest first (queries.py)."""
    db.execute("ALTER TABLE runs ADD COLUMN prompt_folded TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN outcome TEXT NOT NULL DEFAULT 'running'")
    db.execute("ALTER TABLE runs ADD COLUMN job_states TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN cost_usd REAL")
    for run_id, prompt in db.execute("SELECT run_id, prompt FROM runs").fetchall():
        db.execute("UPDATE runs SET prompt_folded = ? WHERE run_id = ?", (prompt.casefold(), run_id))
        db.execute(summary_sql(SQLITE), {"run_id": run_id})
    db.execute("DROP INDEX runs_by_time")  # the next index starts with the same column and orders the list too
    db.execute("CREATE INDEX runs_by_prompt ON runs (created_at, prompt_folded)")  # a search reads it, not the runs
    db.execute("DROP INDEX runs_by_owner")
    db.execute("CREATE INDEX runs_by_owner ON runs (owner, created_at)")
    db.execute("CREATE INDEX runs_by_outcome ON runs (outcome, created_at)")
    db.execute("CREATE INDEX jobs_by_task ON jobs (provider, task_id)")


def v5_measurements(db: sqlite3.Connection) -> None:
    """Jobs keep their whole result (latency interval, breakdown, the provider's own timings, size, format)."""
    db.execute("ALTER TABLE jobs ADD COLUMN result_json TEXT")
    db.execute("CREATE INDEX jobs_by_target ON jobs (provider, model, state)")


def v6_votes(db: sqlite3.Connection) -> None:
    """Arena votes: one row per pairwise outcome; a visitor votes once per round (the UNIQUE key)."""
    db.execute(VOTES_TABLE_SQL)
    db.execute("CREATE INDEX votes_by_owner ON votes (owner, at)")
    db.execute("CREATE INDEX votes_by_mode ON votes (mode, id)")


# Plain SQL types only (TEXT, INTEGER, REAL), so another store can take the same table as it is.
VOTES_TABLE_SQL = """CREATE TABLE votes (id INTEGER PRIMARY KEY, round_id TEXT NOT NULL, pair INTEGER NOT NULL,
    run_id TEXT NOT NULL, mode TEXT NOT NULL, prompt TEXT NOT NULL,
    a_provider TEXT NOT NULL, a_model TEXT NOT NULL, a_task_id TEXT,
    b_provider TEXT NOT NULL, b_model TEXT NOT NULL, b_task_id TEXT,
    outcome TEXT NOT NULL, choice TEXT NOT NULL, identical INTEGER NOT NULL DEFAULT 0,
    shown INTEGER NOT NULL DEFAULT 2, owner TEXT NOT NULL, at TEXT NOT NULL, UNIQUE (round_id, owner, pair))"""

# Version N is the file after MIGRATIONS[:N]. Append only; never edit a released step. A change of the schema
# is a step here and one in postgres_schema.MIGRATIONS (see playground/history/migrations.py).
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    v1_tables,
    v2_search_and_resume,
    v3_owner,
    v4_fast_list,
    v5_measurements,
    v6_votes,
)
SCHEMA_VERSION = len(MIGRATIONS)

UPSERT_JOB_SQL = """INSERT INTO jobs (run_id, provider, model, task_id, state, created_at, updated_at, latency_s,
        cost_usd, cost_source, error, error_code, error_kind, result_url, result_path, sent_json, notes_json, urls_json,
        result_json)
    VALUES (:run_id, :provider, :model, :task_id, :state, :at, :at, :latency_s, :cost_usd, :cost_source, :error,
        :error_code, :error_kind, :result_url, :result_path, COALESCE(:sent, :result_sent), :notes, :urls, :result)
    ON CONFLICT (run_id, provider, model) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
        task_id = COALESCE(excluded.task_id, task_id), latency_s = COALESCE(excluded.latency_s, latency_s),
        cost_usd = COALESCE(excluded.cost_usd, cost_usd), cost_source = COALESCE(excluded.cost_source, cost_source),
        error = excluded.error, error_code = excluded.error_code, error_kind = excluded.error_kind,
        result_url = COALESCE(excluded.result_url, result_url),
        result_path = COALESCE(excluded.result_path, result_path),
        sent_json = COALESCE(:sent, sent_json, :result_sent),
        notes_json = CASE WHEN :notes = '[]' THEN notes_json ELSE :notes END,
        urls_json = CASE WHEN :urls = '{}' THEN urls_json ELSE :urls END,
        result_json = COALESCE(excluded.result_json, result_json)
    RETURNING id"""
DURATIONS_SQL = """SELECT result_json FROM jobs WHERE provider = ? AND model = ? AND state = 'succeeded'
    AND result_json IS NOT NULL ORDER BY id DESC LIMIT ?"""
FINISHED_JOBS_SQL = """SELECT j.* FROM jobs j JOIN runs r ON r.run_id = j.run_id
    WHERE j.state IN ('succeeded', 'failed', 'canceled') AND (:since IS NULL OR j.created_at >= :since)
      AND (:kind IS NULL OR r.kind = :kind) ORDER BY j.id"""

INSERT_VOTE_SQL = f"INSERT INTO votes ({', '.join(VOTE_COLUMNS)}) VALUES ({', '.join(':' + c for c in VOTE_COLUMNS)})"
VOTES_SQL = f"""SELECT {", ".join(VOTE_COLUMNS)} FROM votes
    WHERE (:mode IS NULL OR mode = :mode) AND (:owner IS NULL OR owner = :owner) ORDER BY id"""
JOB_FACTS_SQL = """SELECT j.provider, j.model, j.state, j.latency_s, j.cost_usd
    FROM jobs j JOIN runs r ON r.run_id = j.run_id WHERE (:kind IS NULL OR r.kind = :kind) ORDER BY j.id"""
