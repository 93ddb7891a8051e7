"""Benchmark: how fairly and how cheaply each provider's end is detected.

Every provider x model edits one image in the sandbox; each job's duration is drawn from a realistic spread
(per target a median around 8 s, 5 to 15 s, and a per-job spread), known exactly. A few warm-up rounds fill
the history the polling policy learns from; then, per provider, it prints status reads per job, the mean
and p95 detection delay (shown minus true latency), and the same figures for fixed 2 s polling computed on
the same durations. With --callbacks, the jobs report back by callback instead.

.venv/bin/python bench/polling.py                   # realistic per-job spread (8 %), then a wide one (25 %)
.venv/bin/python bench/polling.py --spread 0.08 --rounds 6 --warmup 6
.venv/bin/python bench/polling.py --callbacks       # detection through callbacks (delivery to job end)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.applications import Starlette

from playground.history import SqliteHistory
from playground.models import MODELS, GenerationRequest, InputImage
from playground.providers import REGISTRY
from playground.sandbox.core import SandboxState, ready_image
from playground.sandbox.server import LoopbackServer, SandboxServer, sandbox_settings
from playground.service import GenerationService
from playground.settings import Settings
from playground.webhooks import routes

FIXED_S = 2.0  # the RunAPI SDK's and Runflow's fixed interval: the comparison


def medians(seed: int) -> dict[tuple[str, str], float]:
    """A typical job time per (provider, model): around 8 s, from 5 to 15 s, fixed by the seed."""
    rng = random.Random(seed)
    return {(p, m): min(15.0, max(5.0, 8.0 * math.exp(rng.gauss(0, 0.3)))) for p in REGISTRY for m in MODELS}


def sampler(typical: dict[tuple[str, str], float], spread: float, seed: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed + 1)
    return lambda provider, model: round(typical[(provider, model)] * math.exp(rng.gauss(0, spread)), 3)


async def measure(spread: float, warmup: int, rounds: int, callbacks: bool, seed: int) -> None:
    state = SandboxState(seed=seed)
    state.ready_made = True
    state.durations = sampler(medians(seed), spread, seed)
    with SandboxServer(state) as sandbox, tempfile.TemporaryDirectory() as tmp:
        image = InputImage(url=f"{sandbox.url}/files/{state.add_file(ready_image('png'), 'image/png')}")
        settings = sandbox_settings(Settings(out_dir=Path(tmp) / "out", job_timeout_s=120), sandbox.url)
        history = SqliteHistory.open(Path(tmp) / "data")
        webhooks = Starlette()  # our callback routes, added once the service exists
        receiver = LoopbackServer(webhooks).start() if callbacks else None
        service = GenerationService(
            settings,
            history=history,
            callback_base_url=receiver.url if receiver else None,
            clock=time.time,  # wall clock, so a job's end can be set beside the sandbox's own times
        )
        webhooks.router.routes.extend(routes(service, None))
        request = GenerationRequest(prompt="turn the sky orange", image=image)
        targets = [(p, m) for p in REGISTRY for m in MODELS]
        for _ in range(warmup):
            await one_round(service, request, targets)
        before = {p: state.count(p, "status") for p in REGISTRY}
        jobs: list[tuple[str, float, float]] = []  # (provider, true duration, shown latency)
        started = time.perf_counter()
        for _ in range(rounds):
            for event in await one_round(service, request, targets):
                job = state.jobs[event.task_id.replace("-", "")]  # Runflow shows the id as a UUID
                if callbacks:  # from the sandbox sending the callback to the job seen done (wall clock)
                    seen = job.created_at + event.result.latency_s
                    true_s = event.result.latency_s - (seen - state.callback_sent_at[job.id])
                else:
                    true_s = job.duration_s
                jobs.append((event.provider, true_s, event.result.latency_s))
        wall = time.perf_counter() - started
        reads = {p: state.count(p, "status") - before[p] for p in REGISTRY}
        await service.aclose()
        await history.aclose()
        if receiver is not None:
            receiver.stop()
    report(jobs, reads, spread=spread, warmup=warmup, rounds=rounds, callbacks=callbacks, wall=wall)


async def one_round(service: GenerationService, request: GenerationRequest, targets: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    plan = service.plan(request, targets)
    plan.raise_first()
    finished = [e async for e in service.run(plan) if e.is_terminal]
    failed = [e for e in finished if e.result is None]
    if failed:
        raise SystemExit(f"{len(failed)} jobs failed, e.g. {failed[0].provider}: {failed[0].error}")
    return finished


def report(jobs, reads, *, spread, warmup, rounds, callbacks, wall) -> None:  # type: ignore[no-untyped-def]
    by: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for provider, true_s, shown_s in jobs:
        by[provider].append((true_s, shown_s))
    mode = (
        "callbacks; delay = from the sandbox sending the callback to the job seen done"
        if callbacks
        else f"learned polling after {warmup} warm-up rounds; delay = shown minus true latency"
    )
    print(
        f"\n{len(jobs)} edit jobs ({rounds} rounds x {len(by)} providers x {len(MODELS)} models), per-job spread "
        f"{100 * spread:.0f} %, {mode}; {wall:.0f} s"
    )
    print(
        f"{'provider':<18} {'reads/job':>9} {'mean delay':>10} {'p95 delay':>9} {'shown-true':>10}   |"
        f" fixed {FIXED_S:g} s: {'reads/job':>9} {'mean delay':>10} {'p95 delay':>9}"
    )
    means, all_delays, all_fixed_delays, ours_reads, fixed_reads = [], [], [], 0, 0
    for provider, pairs in by.items():
        delays = [shown - true for true, shown in pairs]
        fixed = [(math.ceil(true / FIXED_S), math.ceil(true / FIXED_S) * FIXED_S - true) for true, _ in pairs]
        fixed_delays = [d for _, d in fixed]
        means.append(statistics.fmean(delays))
        all_delays += delays
        all_fixed_delays += fixed_delays
        ours_reads += reads[provider]
        fixed_reads += sum(n for n, _ in fixed)
        print(
            f"{REGISTRY[provider].label:<18} {reads[provider] / len(pairs):>9.2f} {statistics.fmean(delays):>9.3f}s "
            f"{p95(delays):>8.3f}s {statistics.fmean(delays):>+9.3f}s   |        "
            f"{statistics.fmean(n for n, _ in fixed):>9.2f} {statistics.fmean(fixed_delays):>9.3f}s "
            f"{p95(fixed_delays):>8.3f}s"
        )
    print(
        f"{'all':<18} {ours_reads / len(jobs):>9.2f} {statistics.fmean(all_delays):>9.3f}s {p95(all_delays):>8.3f}s "
        f"{'':>10}   |        {fixed_reads / len(jobs):>9.2f} {statistics.fmean(all_fixed_delays):>9.3f}s "
        f"{p95(all_fixed_delays):>8.3f}s"
    )
    print(
        f"spread of (shown - true) across providers: {max(means) - min(means):.3f} s; "
        f"status reads: {ours_reads / fixed_reads:.2f}x fixed {FIXED_S:g} s polling"
    )


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spread", type=float, action="append", help="per-job spread (log sd); repeatable")
    parser.add_argument("--warmup", type=int, default=6, help="rounds that fill the history first")
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds")
    parser.add_argument("--callbacks", action="store_true", help="jobs report back by callback")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for spread in args.spread or ([0.08] if args.callbacks else [0.08, 0.25]):
        warmup = 0 if args.callbacks else args.warmup
        asyncio.run(measure(spread, warmup, args.rounds, args.callbacks, args.seed))


if __name__ == "__main__":
    main()
