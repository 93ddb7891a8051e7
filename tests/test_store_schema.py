"""The two stores keep the same schema; PostgreSQL's migrations: from empty, once under concurrency, never newer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from playground.errors import ConfigError
from playground.history import PostgresHistory, SqliteHistory
from playground.history.migrations import PG_ONLY_COLUMNS, PG_ONLY_TABLES
from playground.history.postgres_schema import MIGRATIONS, SCHEMA_VERSION, migrate


def sqlite_columns(path: Path) -> dict[str, set[str]]:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")} for table in tables}


def postgres_columns(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


def shared(columns: dict[str, set[str]]) -> dict[str, set[str]]:
    kept = {table: cols for table, cols in columns.items() if table not in PG_ONLY_TABLES}
    return {table: cols - PG_ONLY_COLUMNS.get(table, frozenset()) for table, cols in kept.items()}


def test_both_stores_end_their_migrations_with_the_same_tables_and_columns(tmp_path, pg_url):
    SqliteHistory.open(tmp_path).close()
    PostgresHistory.open(pg_url, tmp_path)
    assert shared(postgres_columns(pg_url)) == sqlite_columns(tmp_path / "history.sqlite3")


def test_the_schema_comparison_sees_a_column_only_one_store_has(tmp_path, pg_url):
    SqliteHistory.open(tmp_path).close()
    PostgresHistory.open(pg_url, tmp_path)
    with psycopg.connect(pg_url) as db:
        db.execute("ALTER TABLE runs ADD COLUMN votes INTEGER")
    assert shared(postgres_columns(pg_url)) != sqlite_columns(tmp_path / "history.sqlite3")


def test_an_empty_database_is_migrated_to_the_current_version(postgres_cluster, tmp_path):
    url = postgres_cluster.new_database(migrated=False)
    PostgresHistory.open(url, tmp_path)
    with psycopg.connect(url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_an_older_database_gets_only_the_steps_it_lacks_and_keeps_its_rows(postgres_cluster, tmp_path):
    url = postgres_cluster.new_database(migrated=False)
    with psycopg.connect(url) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        MIGRATIONS[0](db)
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute("INSERT INTO runs (run_id, created_at, kind, prompt) VALUES ('old', now(), 'generate', 'Old fox')")
    with psycopg.connect(url) as db:
        assert migrate(db) == 1
        assert db.execute("SELECT run_id FROM runs").fetchall() == [("old",)]
        assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (0,)


def test_replicas_starting_at_once_migrate_the_database_once(postgres_cluster, tmp_path):
    url = postgres_cluster.new_database(migrated=False)
    versions: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with psycopg.connect(url) as db:
                versions.append(migrate(db))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(versions) == [0, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION], "one found it empty, the rest done"


def test_a_database_written_by_a_newer_playground_is_refused_untouched(pg_url, tmp_path):
    with psycopg.connect(pg_url) as db:
        db.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="newer than this playground"):
        PostgresHistory.open(pg_url, tmp_path)
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION + 1,)
