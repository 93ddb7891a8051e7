"""Benchmark: many runs at once in one playground process, against the sandbox in another process.

N runs x every provider x both models (edits, so Runflow takes part), all at once, every job taking the same
known time, with history and the learned polling policy as the app has them (a few warm-up rounds first).
The sandbox serves small ready-made images, so its own drawing does not dominate, and runs in its own
process, so its CPU is not counted. Prints jobs, succeeded, wall / job seconds, p50/p99 latency, and the
playground process's CPU seconds and peak RSS, and how wide the latencies' intervals are.

.venv/bin/python bench/scale.py                 # 63 runs x 16 = 1,008 jobs of 5 s
.venv/bin/python bench/scale.py --runs 10 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playground.history import SqliteHistory
from playground.models import MODELS, Events, GenerationRequest, InputImage, JobEvent
from playground.providers import REGISTRY
from playground.sandbox.server import sandbox_settings
from playground.service import GenerationService
from playground.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# The policy learns a (provider, model) after 5 finished jobs; 5 more, read on the learned schedule, are the
# precise ones it then prefers. So the measured round polls as a used app does (one read per job here).
WARMUP_ROUNDS = 10


def serve_sandbox(port: int, seconds: float) -> None:
    """The sandbox process: every protocol, jobs of ``seconds``, small ready-made images."""
    from playground.sandbox.core import SandboxState, ready_image
    from playground.sandbox.server import SandboxServer

    state = SandboxState(job_seconds=seconds)
    state.ready_made = True
    file_id = state.add_file(ready_image("png"), "image/png")  # the input every edit names
    with SandboxServer(state, port=port):
        print(f"ready {file_id}", flush=True)
        while True:
            time.sleep(3600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def finals(events: Events) -> list[JobEvent]:
    return [event async for event in events if event.is_terminal]


async def measure(runs: int, seconds: float, url: str, file_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(out_dir=Path(tmp) / "out", data_dir=Path(tmp) / "data", job_timeout_s=120)
        settings = sandbox_settings(base, url)
        history = SqliteHistory.open(settings.data_dir)
        service = GenerationService(settings, history=history)
        image = InputImage(url=f"{url}/files/{file_id}")
        request = GenerationRequest(prompt="turn the sky orange", image=image)
        targets = [(p, m) for p in REGISTRY for m in MODELS]
        for _ in range(WARMUP_ROUNDS):
            await finals(service.run(service.plan(request, targets)))
        cpu, started = time.process_time(), time.perf_counter()
        done = await asyncio.gather(*(finals(service.run(service.plan(request, targets))) for _ in range(runs)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        await service.aclose()
        await history.aclose()
    events = [event for run in done for event in run]
    latencies = sorted(e.result.latency_s for e in events if e.result is not None)
    bars = sorted(e.result.latency_s - (e.result.latency_low_s or 0.0) for e in events if e.result is not None)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(events)} jobs ({runs} runs x {len(targets)} provider x model pairs), {seconds:g} s each, at once")
    print(f"succeeded       {len(latencies)} of {len(events)}")
    print(f"wall            {wall:.2f} s = {wall / seconds:.2f} x the job time")
    print(f"latency p50     {pct(latencies, 50):.2f} s   p99 {pct(latencies, 99):.2f} s")
    print(f"error bar p50   {pct(bars, 50):.2f} s   p99 {pct(bars, 99):.2f} s (how wide each latency's interval is)")
    print(f"playground CPU  {cpu:.2f} s = {1000 * cpu / len(events):.2f} ms per job")
    print(f"peak RSS        {peak_mb:.0f} MB")
    for reason, count in Counter(e.error for e in events if e.result is None).most_common(3):
        print(f"failed {count} x: {reason}")


def pct(ordered: list[float], p: int) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=63)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve-sandbox", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox, args.seconds)
        return
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--serve-sandbox", str(port), "--seconds", str(args.seconds)]
    sandbox = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert sandbox.stdout is not None
        word, file_id = sandbox.stdout.readline().split()
        assert word == "ready"
        asyncio.run(measure(args.runs, args.seconds, f"http://127.0.0.1:{port}", file_id))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


if __name__ == "__main__":
    main()
