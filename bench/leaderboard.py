"""Benchmark: the time to fit the leaderboard (Bradley–Terry plus bootstrap intervals) on synthetic votes.

.venv/bin/python bench/leaderboard.py                          # 10,000 votes over 16 targets, 1,000 rounds
.venv/bin/python bench/leaderboard.py --votes 50000 --targets 32 --rounds 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playground.leaderboard import ELO_PER_UNIT, Duel, rate


def synthetic(votes: int, targets: int, seed: int) -> list[Duel]:
    """Votes drawn from a Bradley–Terry model with ratings spread over 300 Elo points and 20 % ties."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(-150, 150, targets) / ELO_PER_UNIT
    a = rng.integers(0, targets, votes)
    b = (a + rng.integers(1, targets, votes)) % targets
    p_a = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    u = rng.random(votes)
    outcome = np.where(u < 0.2, "tie", np.where(u < p_a + 0.1, "a", "b"))
    return [Duel(f"t{x:02d}", f"t{y:02d}", o) for x, y, o in zip(a, b, outcome, strict=True)]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=10_000)
    parser.add_argument("--targets", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    duels = synthetic(args.votes, args.targets, seed=0)
    rate(duels, rounds=10)  # warm up imports and caches
    times, cpu = [], []
    for _ in range(args.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        rows = rate(duels, rounds=args.rounds)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(f"{args.votes} votes over {args.targets} targets, {args.rounds} bootstrap rounds, {args.repeat} fits")
    print(f"fit time: median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s")
    # CPU time of this process (all its threads): what the fit costs, whatever else the machine is running
    print(f"CPU time: median {statistics.median(cpu):.3f} s")
    widths = [row.upper - row.lower for row in rows]
    print(f"95 % interval width: median {statistics.median(widths):.1f} Elo points; top: {rows[0].target}")


if __name__ == "__main__":
    main()
