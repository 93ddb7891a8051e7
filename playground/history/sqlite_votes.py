"""The SQL behind the arena's votes and the board's job facts, for SqliteHistory (which owns the connection)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from playground.history.queries import VOTE_COLUMNS
from playground.history.records import JobFact, Vote
from playground.history.sqlite_schema import INSERT_VOTE_SQL, JOB_FACTS_SQL, VOTES_SQL


def insert_votes(db: sqlite3.Connection, votes: Sequence[tuple[Vote, str]]) -> None:
    """Insert (vote, its time as stored text) pairs inside the caller's transaction.

    sqlite3.IntegrityError when the owner already voted on the round (UNIQUE round_id, owner, pair).
    """
    db.executemany(
        INSERT_VOTE_SQL, [vote.model_dump() | {"at": at, "identical": int(vote.identical)} for vote, at in votes]
    )


def select_votes(db: sqlite3.Connection, *, mode: str | None, owner: str | None) -> list[Vote]:
    rows = db.execute(VOTES_SQL, {"mode": mode, "owner": owner}).fetchall()
    return [Vote(**{name: row[name] for name in VOTE_COLUMNS}) for row in rows]


def count_rounds(db: sqlite3.Connection, owner: str, since: str) -> int:
    row = db.execute("SELECT COUNT(DISTINCT round_id) FROM votes WHERE owner = ? AND at >= ?", (owner, since))
    return int(row.fetchone()[0])


def select_job_facts(db: sqlite3.Connection, kind: str | None) -> list[JobFact]:
    rows = db.execute(JOB_FACTS_SQL, {"kind": kind}).fetchall()
    return [JobFact(**{key: row[key] for key in row.keys()}) for row in rows]
