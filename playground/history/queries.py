"""The SQL both stores share: the History list (filters, newest first, keyset pages) and a run's summary.

Why it stays fast as the history grows: what the list shows of a run (its outcome, its jobs' states, their cost)
is kept on the run itself, recomputed from its few jobs whenever one of them changes; the prompt is kept
case-folded beside it; and the list walks an index on (created_at, seq) newest first, reading runs only and
stopping after ``limit`` matches. A page deep in the list continues from a
cursor (the last run's position) instead of skipping rows with OFFSET, so page 400 costs what page 1 costs.
Each filter that is set adds one condition; a filter that is not set adds nothing for the planner to weigh.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from playground.history.records import OUTCOMES, RunSummary, Vote
from playground.models import JobEvent, JobResult, WireRequest

VOTE_COLUMNS = tuple(Vote.model_fields)  # the votes table's columns, in both stores: the Vote model's fields

TERMINAL_SQL = "('succeeded', 'failed', 'canceled', 'stopped')"
OUTCOME_OF_RUN = f"""(SELECT CASE
        WHEN COUNT(*) = 0 OR COUNT(*) FILTER (WHERE j.state NOT IN {TERMINAL_SQL}) > 0 THEN 'running'
        WHEN COUNT(*) FILTER (WHERE j.state = 'stopped') > 0 THEN 'stopped'
        WHEN COUNT(*) FILTER (WHERE j.state = 'succeeded') = COUNT(*) THEN 'succeeded'
        WHEN COUNT(*) FILTER (WHERE j.state = 'succeeded') = 0 THEN 'failed' ELSE 'mixed' END
    FROM jobs j WHERE j.run_id = runs.run_id)"""
"""The outcome of the run in the enclosing UPDATE of ``runs``, from its jobs' states."""
COST_OF_RUN = "(SELECT SUM(j.cost_usd) FROM jobs j WHERE j.run_id = runs.run_id)"
CURSOR_SEP = "~"
LISTED = "r.run_id, r.created_at, r.kind, r.prompt, r.outcome, r.job_states, r.cost_usd"  # what a list line shows


@dataclass(frozen=True)
class Dialect:
    """What differs between the stores' SQL: placeholders, substring search, the run's sequence column."""

    param: Callable[[str], str]
    contains: str  # a format with {column} and {value}: true when value occurs in column
    seq: str  # the column that orders runs created in the same microsecond
    moment: Callable[[str], Any]  # a cursor's timestamp as the store compares it
    concat: str  # the aggregate that joins text with commas
    pattern: Callable[[str], str] = str  # the folded query as ``contains`` takes it


def like_pattern(text: str) -> str:
    """'%text%' with LIKE's own characters escaped: the query matches as a plain substring."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


SQLITE = Dialect(lambda name: f":{name}", "instr({column}, {value}) > 0", "r.rowid", str, "group_concat")
# LIKE rather than strpos: a trigram index (postgres_schema.v3_prompt_search) serves it, when pg_trgm is there.
POSTGRES = Dialect(
    lambda name: f"%({name})s", "{column} LIKE {value}", "r.seq", datetime.fromisoformat, "string_agg", like_pattern
)


def check_outcome(outcome: str | None) -> None:
    """ValueError naming the known outcomes when ``outcome`` is not one of them."""
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")


def cursor_of(created_at: datetime | str, seq: int) -> str:
    """The opaque position of one run in the list."""
    moment = created_at if isinstance(created_at, str) else created_at.isoformat(timespec="microseconds")
    return f"{moment}{CURSOR_SEP}{seq}"


def parse_cursor(cursor: str) -> tuple[str, int]:
    """(timestamp, seq) of a cursor this module made; ValueError with a sentence otherwise."""
    moment, sep, seq = cursor.rpartition(CURSOR_SEP)
    try:
        datetime.fromisoformat(moment)
        if not sep or not seq.isdigit():
            raise ValueError
    except ValueError:
        raise ValueError(f"the list cursor {cursor[:40]!r} is not one this history gave out") from None
    return moment, int(seq)


def list_sql(
    dialect: Dialect,
    *,
    query: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    outcome: str | None = None,
    owner: str | None = None,
    after: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[str, dict[str, Any]]:
    """The statement listing runs newest first with these filters, and its parameters.

    ``query`` is matched against the case-folded prompt; ``after`` is a cursor from an earlier page; a negative
    ``limit`` means no limit. Rows: run_id, created_at, kind, prompt, outcome, job_states, cost_usd, seq.
    """
    p = dialect.param
    where: list[str] = []
    params: dict[str, Any] = {}
    if owner is not None:
        where.append(f"r.owner = {p('owner')}")
    if outcome is not None:
        where.append(f"r.outcome = {p('outcome')}")
    if query:
        where.append(dialect.contains.format(column="r.prompt_folded", value=p("query")))
    job_filters = [f"f.{name} = {p(name)}" for name, value in (("provider", provider), ("model", model)) if value]
    if job_filters:
        where.append(f"EXISTS (SELECT 1 FROM jobs f WHERE f.run_id = r.run_id AND {' AND '.join(job_filters)})")
    if after is not None:
        moment, seq = parse_cursor(after)
        where.append(f"(r.created_at, {dialect.seq}) < ({p('after_at')}, {p('after_seq')})")
        params |= {"after_at": dialect.moment(moment), "after_seq": seq}
    params |= {"owner": owner, "outcome": outcome, "query": dialect.pattern(query.casefold()) if query else None}
    params |= {"provider": provider, "model": model, "limit": limit, "offset": offset}
    order = f"ORDER BY r.created_at DESC, {dialect.seq} DESC"
    page = (f" LIMIT {p('limit')}" if limit >= 0 else "") + (f" OFFSET {p('offset')}" if offset else "")
    matching = f"FROM runs r {'WHERE ' + ' AND '.join(where) if where else ''}"
    if query:  # a rare word: find the page in the narrow (created_at, seq, prompt) index, then read those runs only
        matching = f"FROM runs r WHERE {dialect.seq} IN (SELECT {dialect.seq} {matching} {order}{page})"
        page = ""
    sql = f"SELECT {LISTED}, {dialect.seq} AS seq {matching} {order}{page}"
    return sql, {k: v for k, v in params.items() if p(k) in sql}


def summary_sql(dialect: Dialect) -> str:
    """The UPDATE that recomputes one run's outcome, job states and cost from its jobs (run_id: its one parameter)."""
    states = f"(SELECT {dialect.concat}(j.provider || ' ' || j.model || ' ' || j.state, ',') FROM jobs j"
    states += " WHERE j.run_id = runs.run_id)"
    return f"""UPDATE runs SET outcome = {OUTCOME_OF_RUN}, job_states = COALESCE({states}, ''),
        cost_usd = {COST_OF_RUN} WHERE run_id = {dialect.param("run_id")}"""


def summaries(runs: Sequence[Mapping[str, Any]]) -> list[RunSummary]:
    """The list's lines, from rows of list_sql: each run with its jobs' (provider, model, state), sorted."""
    return [
        RunSummary(
            run_id=run["run_id"],
            created_at=run["created_at"],
            kind=run["kind"],
            prompt=run["prompt"],
            outcome=run["outcome"],
            job_states=tuple(sorted(tuple(part.split(" ")) for part in run["job_states"].split(",") if part)),
            cost_usd=run["cost_usd"],
            cursor=cursor_of(run["created_at"], run["seq"]),
        )
        for run in runs
    ]


def result_of(raw: str | None, sent: WireRequest | None) -> JobResult | None:
    """A job's kept result (its result_json column), with the request it was created by."""
    if not raw:
        return None
    data = json.loads(raw)
    return JobResult.model_validate({**data, "sent": sent or WireRequest(method="GET", url="(not recorded)")})


def job_params(event: JobEvent, at: str | datetime) -> dict[str, Any]:
    """The named parameters of a job upsert, from one event (both stores' UPSERT_JOB_SQL take these)."""
    result = event.result
    terminal_latency = event.elapsed_s if event.is_terminal else None
    return {
        "run_id": event.run_id,
        "provider": event.provider,
        "model": event.model,
        "task_id": event.task_id,
        "state": event.state,
        "terminal": event.is_terminal,
        "at": at,
        "latency_s": result.latency_s if result else terminal_latency,
        "cost_usd": result.cost_usd if result else None,
        "cost_source": result.cost_source if result else None,
        "error": event.error,
        "error_code": event.code,
        "error_kind": event.kind,
        "result_url": result.image_url if result else None,
        "result_path": (result.stored or result.path) if result else None,
        "sent": event.sent.model_dump_json() if event.sent else None,
        "result_sent": result.sent.model_dump_json() if result else None,
        "notes": json.dumps(list(event.notes)),
        "urls": json.dumps(event.urls, sort_keys=True),
        "result": result.model_dump_json(exclude={"sent"}) if result else None,
    }
