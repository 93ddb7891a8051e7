"""Benchmark: another process holds a write lock on the app's history for 20 s (acceptance 3 of issue 13).

Prints how fast GET / and the API info answer with and without the lock, and when a run started during the
lock ends, with what sentence.

.venv/bin/python bench/store_lock.py            # a 20 s lock
.venv/bin/python bench/store_lock.py --hold 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_process import app_process
from tests.ui.conftest import form

HOLD = (
    "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(float(sys.argv[2])); db.execute('ROLLBACK')"
)


def latencies(url: str, seconds: float, watch: Any = None, ended: list[float] | None = None) -> list[float]:
    """GET ``url`` back to back for ``seconds``: each answer's time (``watch``: a job, its end put in ``ended``)."""
    found, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        httpx.get(url, timeout=60).raise_for_status()
        found.append(time.perf_counter() - started)
        if watch is not None and ended is not None and not ended and watch.done():
            ended.append(time.monotonic())
    return found


def describe(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} n={len(values):<3} median {statistics.median(values) * 1000:6.0f} ms   "
        f"max {max(values) * 1000:6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the other process holds the lock")
    args = parser.parse_args()
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp, app_process(Path(tmp)) as app:
        print(describe("GET / (no lock)", latencies(app.url, 3)))
        print(describe("GET /gradio_api/info (no lock)", latencies(f"{app.url}gradio_api/info", 3)))
        db = app.data_dir / "history.sqlite3"
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(args.hold)], stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        locked_at = time.monotonic()
        client = Client(app.url, verbose=False, download_files=False)
        job = client.submit(*form("a fox during the lock", ["kie"]), api_name="/generate")
        ended: list[float] = []
        print(describe("GET / (locked)", latencies(app.url, min(6.0, args.hold / 3), job, ended)))
        print(describe("GET /gradio_api/info (locked)", latencies(f"{app.url}gradio_api/info", 2, job, ended)))
        final = job.result()
        ended_s = (ended[0] if ended else time.monotonic()) - locked_at
        sentence = next((v for v in final if isinstance(v, str) and "locked" in v), "(no sentence)")
        print(f"a run started during the lock ended within {ended_s:.1f} s, lock still held: {holder.poll() is None}")
        print(f"  it said: {sentence}")
        holder.wait()


if __name__ == "__main__":
    main()
