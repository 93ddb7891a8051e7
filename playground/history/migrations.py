"""How the two stores' schemas change: one migration per store, appended, never edited.

Both stores keep the same tables and columns (the shared schema), each in its own dialect:

- SQLite: ``sqlite_schema.MIGRATIONS``, Python functions of a ``sqlite3.Connection``; the file's version is
  ``PRAGMA user_version``. Each step runs in its own transaction (``SqliteHistory._migrate``). SQLite's ALTER
  TABLE is limited, so a step may add a column and fill it in Python (see ``v2_search_and_resume``).
- PostgreSQL: ``postgres_schema.MIGRATIONS``, functions of a ``psycopg.Connection``; the version is the row of
  ``schema_version``. All pending steps run in one transaction under an advisory lock (``postgres_schema.migrate``),
  so replicas starting together migrate once and a failed step leaves the database as it was.

The numbers differ (PostgreSQL started from SQLite's version 4 in one step); what must agree is the result.

To change the schema (say, a ``votes`` table):

1. Append ``v5_votes(db)`` to ``sqlite_schema.MIGRATIONS`` (create the table, its indexes, backfill if needed).
2. Append ``v3_votes(db)`` to ``postgres_schema.MIGRATIONS`` with the same table and columns in PostgreSQL's
   types (``TIMESTAMPTZ`` for times, ``DOUBLE PRECISION`` for reals, an identity column for ids).
3. Write the store methods in both ``sqlite.py`` and ``postgres.py`` (and the History Protocol), and test them
   through the ``store`` fixture, which runs every test on both stores.

``tests/test_store_schema.py`` fails while the two stores' tables or columns differ, apart from what only the
PostgreSQL store needs (below), so a step added to one list and not the other is caught at once.
"""

from __future__ import annotations

PG_ONLY_TABLES = frozenset({"inputs", "deliveries", "schema_version"})
"""Local inputs as rows (SQLite keeps files), callbacks handed between replicas, the schema version."""
PG_ONLY_COLUMNS = {"runs": frozenset({"seq"}), "jobs": frozenset({"lease_owner", "lease_until"})}
"""The run's insertion order (SQLite's rowid), and each job's owner replica and lease."""
