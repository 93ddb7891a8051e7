"""Benchmark: the History list on a big store; prints first-page and deep-page times on SQLite and PostgreSQL.

.venv/bin/python bench/history.py                         # 20,000 runs x 16 jobs, both stores
.venv/bin/python bench/history.py --runs 2000 --store sqlite
.venv/bin/python bench/history.py --postgres-url postgresql://user@host/emptydb

The store is filled in bulk (one transaction, rows as the store writes them: 16 jobs a run, three state changes
a job, each run's summary recomputed by the store's own SQL), then each query is timed through the store's async
interface, as the History tab calls it: median and slowest of REPEATS after a warm-up. Without --postgres-url a
throwaway PostgreSQL cluster is started (Debian's binaries, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from playground.history import History, PostgresHistory, SqliteHistory
from playground.history.queries import POSTGRES, SQLITE, summary_sql
from playground.models import MODELS
from playground.providers import REGISTRY

REPEATS = 15
PAGE = 50
DEEP_PAGE = 400
START = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ["fox", "owl", "castle", "harbor", "forest", "robot", "garden", "city", "desert", "mountain", "river"]
STYLES = ["watercolor", "isometric 3D", "oil painting", "photo, 35 mm", "pixel art", "ink sketch"]
COMMON, RARE = "lighthouse", "zeppelin"  # in about 5% and 0.1% of the prompts
SENT = {"prompt": "", "aspect_ratio": "16:9", "output_format": "jpeg", "callBackUrl": "https://example.org/webhooks"}


def prompt(rng: random.Random) -> str:
    words = rng.sample(WORDS, 3)
    if rng.random() < 0.05:
        words[0] = COMMON
    if rng.random() < 0.001:
        words[1] = RARE
    return f"a {words[0]} near a {words[1]} and a {words[2]}, {rng.choice(STYLES)}"


def job_end(rng: random.Random, fate: str) -> str:
    if fate == "mixed":
        return "failed" if rng.random() < 0.2 else "succeeded"
    return {"ok": "succeeded", "failed": "failed", "stopped": "stopped", "running": "running"}[fate]


def rows(count: int, seed: int = 7) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(run row, its 16 job rows) for ``count`` runs, oldest first."""
    rng = random.Random(seed)
    targets = [(name, model) for name in REGISTRY for model in MODELS]
    fates = rng.choices(["ok", "mixed", "failed", "stopped", "running"], [85, 7, 4, 3, 1], k=count)
    for i, fate in enumerate(fates):
        at = START + timedelta(seconds=i * 97 + rng.random())
        text = prompt(rng)
        request = json.dumps({"prompt": text, "model": MODELS[0], "aspect_ratio": "16:9", "output_format": "jpeg"})
        run = (f"run{i:06d}", at, "generate", text, text.casefold(), request, json.dumps(targets), f"owner{i % 50}")
        jobs = []
        for provider, model in targets:
            end = job_end(rng, fate)
            sent = json.dumps({"method": "POST", "url": f"https://api.{provider}.example/create", "body": SENT})
            cost = 0.04 if end == "succeeded" else None
            path = f"outputs/{run[0]}/{provider}-{model}.jpg" if end == "succeeded" else None
            jobs.append((run[0], provider, model, f"task-{i}-{provider}-{model}", end, at, at, 3.2, cost, path, sent))
        yield run, jobs


RUN_COLUMNS = "run_id, created_at, kind, prompt, prompt_folded, request_json, targets_json, owner"
JOB_COLUMNS = (
    "run_id, provider, model, task_id, state, created_at, updated_at, latency_s, cost_usd, result_path, sent_json"
)


def fill_sqlite(path: Path, count: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    job_id = 0
    for run, jobs in rows(count):
        db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (run[0], _iso(run[1]), *run[2:])
        )
        states = []
        for job in jobs:
            job_id += 1
            at = _iso(job[5])
            db.execute(
                f"INSERT INTO jobs (id, {JOB_COLUMNS}) VALUES ({job_id}, {', '.join('?' * 11)})",
                (*job[:5], at, at, *job[7:]),
            )
            states += [(job_id, state, at) for state in ("queued", "running", job[4])]
        db.executemany("INSERT INTO job_states (job_id, state, at) VALUES (?, ?, ?)", states)
    db.executemany(summary_sql(SQLITE), ({"run_id": f"run{i:06d}"} for i in range(count)))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def fill_postgres(url: str, count: int) -> None:
    with psycopg.connect(url) as db:
        if db.execute("SELECT COUNT(*) FROM runs").fetchone() != (0,):
            raise SystemExit("the PostgreSQL history is not empty: give an empty database")
        all_jobs, states = [], []
        with db.cursor() as cur:
            with cur.copy(f"COPY runs ({RUN_COLUMNS}) FROM STDIN") as copy:
                for run, jobs in rows(count):
                    copy.write_row(run)
                    all_jobs += jobs
            with cur.copy(f"COPY jobs ({JOB_COLUMNS}) FROM STDIN") as copy:
                for job_id, job in enumerate(all_jobs, start=1):  # a fresh table numbers copied rows 1, 2, ...
                    copy.write_row(job)
                    states += [(job_id, state, job[5]) for state in ("queued", "running", job[4])]
            with cur.copy("COPY job_states (job_id, state, at) FROM STDIN") as copy:
                for state in states:
                    copy.write_row(state)
            cur.executemany(summary_sql(POSTGRES), [{"run_id": f"run{i:06d}"} for i in range(count)])
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, float, int]:
    """(median ms, slowest ms, rows) over REPEATS calls, after one warm-up."""
    found = await call()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), len(found)


async def deep_cursor(store: History, depth: int) -> str:
    """The cursor that opens page ``depth``, by walking the pages before it."""
    cursor = None
    for _ in range(depth - 1):
        page = await store.list_runs(limit=PAGE, after=cursor)
        cursor = page[-1].cursor
    assert cursor is not None
    return cursor


async def measure(name: str, store: History, count: int) -> list[tuple[str, str, float, float, int]]:
    depth = min(DEEP_PAGE, count // PAGE)
    cursor = await deep_cursor(store, depth)
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("first page, no filter", lambda: store.list_runs(limit=PAGE)),
        (f"first page, prompt '{COMMON}' (5%)", lambda: store.list_runs(query=COMMON, limit=PAGE)),
        (f"first page, prompt '{RARE}' (0.1%)", lambda: store.list_runs(query=RARE, limit=PAGE)),
        ("first page, provider bfl", lambda: store.list_runs(provider="bfl", limit=PAGE)),
        ("first page, model max", lambda: store.list_runs(model="flux-kontext-max", limit=PAGE)),
        ("first page, outcome failed (4%)", lambda: store.list_runs(outcome="failed", limit=PAGE)),
        ("first page, outcome running (1%)", lambda: store.list_runs(outcome="running", limit=PAGE)),
        ("first page, one owner of 50", lambda: store.list_runs(owner="owner7", limit=PAGE)),
        (f"page {depth} by cursor", lambda: store.list_runs(limit=PAGE, after=cursor)),
        (f"page {depth} by OFFSET (for contrast)", lambda: store.list_runs(limit=PAGE, offset=PAGE * (depth - 1))),
    ]
    return [(name, label, *(await timed(call))) for label, call in cases]


async def bench_store(
    kind: str, count: int, data: Path, pg_url: str | None
) -> list[tuple[str, str, float, float, int]]:
    started = time.perf_counter()
    store: History
    if kind == "sqlite":
        sqlite_store = SqliteHistory.open(data)
        fill_sqlite(sqlite_store.path, count)
        store = sqlite_store
    else:
        assert pg_url is not None
        store = PostgresHistory.open(pg_url, data)
        fill_postgres(pg_url, count)
    print(f"{kind}: filled {count:,} runs x 16 jobs in {time.perf_counter() - started:.0f} s", flush=True)
    try:
        return await measure(kind, store, count)
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    cluster = None
    url = args.postgres_url
    if "postgres" in kinds and url is None:
        from tests.pg import start_cluster

        cluster = start_cluster()
        url = cluster.new_database(migrated=False)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in kinds:
                results += asyncio.run(bench_store(kind, args.runs, Path(tmp) / kind, url))
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"\n{args.runs:,} runs x 16 jobs; {PAGE} runs a page; median / slowest of {REPEATS}, in ms")
    for kind, label, median, slowest, found in results:
        print(f"  {kind:<9} {label:<40} {median:7.2f} / {slowest:7.2f}   ({found} runs)")


if __name__ == "__main__":
    main()
