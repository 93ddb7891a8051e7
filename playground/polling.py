"""One polling policy for every provider, learned from this playground's own history.

With no history for a (provider, model), the provider's documented advice is the schedule. Once a few jobs
have finished, their durations say when a job can plausibly be done: the policy sleeps until then, reads
densely (never more than twice a second) while it plausibly is, and backs off toward the documented interval
past the usual range. So every provider is detected as quickly, and its latency is measured as fairly.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from playground.models import JobEvent, JobResult
from playground.providers.base import ProviderSpec
from playground.watch import FixedSchedule, Schedule

log = logging.getLogger(__name__)

MIN_READ_GAP_S = 0.5  # never read one job's status more than twice a second
MIN_SAMPLES = 5  # fewer finished jobs than this: the documented schedule
MAX_SAMPLES = 100  # the most recent jobs of a (provider, model) that the policy learns from
EARLY_MARGIN = 0.9  # the first read comes a little before the fastest job seen...
LATE_MARGIN = 1.1  # ...and dense reading lasts a little past the slowest
BACKOFF_RATE = 0.5  # past the usual range, the gap grows by this many seconds per second overdue
PRECISE_S, PRECISE_SHARE = 1.0, 0.15  # an interval this narrow (absolute, or relative) pins a job's duration

Interval = tuple[float, float]
"""A finished job's duration, as far as we measured it: (at least, at most) seconds."""


class Results(Protocol):
    """Where past results are read from (the History)."""

    async def results(self, provider: str, model: str, *, limit: int = 100) -> list[JobResult]: ...


def duration_of(result: JobResult) -> Interval:
    """How long a job ran, at least and at most: its latency interval, less the create round trip."""
    submit = result.breakdown.get("submit", 0.0)
    low = result.latency_s if result.latency_low_s is None else result.latency_low_s
    return max(0.0, low - submit), max(0.0, result.latency_s - submit)


def _is_precise(interval: Interval) -> bool:
    low, high = interval
    return high - low <= max(PRECISE_S, PRECISE_SHARE * high)


@dataclass(frozen=True)
class LearnedSchedule:
    """Sleep until ``early_s``, read every ``gap_s`` until ``late_s``, then back off to ``slow_s``."""

    early_s: float
    late_s: float
    gap_s: float = MIN_READ_GAP_S
    slow_s: float = 3.0

    def delay_s(self, reads: int, elapsed_s: float) -> float:
        if elapsed_s < self.early_s:
            return max(self.early_s - elapsed_s, 0.0 if reads == 0 else self.gap_s)
        if elapsed_s < self.late_s:
            return self.gap_s
        overdue = elapsed_s - self.late_s
        return min(self.slow_s, max(self.gap_s, overdue * BACKOFF_RATE))


def learned_schedule(durations: Sequence[Interval], documented: FixedSchedule) -> Schedule:
    """The schedule for jobs whose durations fell in ``durations``, or the documented one with too few of them.

    Jobs measured precisely are trusted first; coarse ones (from the documented schedule) only until enough
    precise ones exist. A job that was already done at its first read says nothing about how soon jobs end.
    """
    precise = [d for d in durations if _is_precise(d)]
    pool = precise if len(precise) >= MIN_SAMPLES else list(durations)
    if len(pool) < MIN_SAMPLES:
        return documented
    lows = sorted(low for low, _ in pool if low > 0) or [0.0]
    highs = sorted(high for _, high in pool)
    early, late = _tail(lows, first=True), _tail(highs, first=False)
    return LearnedSchedule(early * EARLY_MARGIN, late * LATE_MARGIN, slow_s=max(MIN_READ_GAP_S, documented.interval_s))


def _tail(ordered: list[float], *, first: bool) -> float:
    """The 2nd (or 98th) percentile when there are enough values to trust it, else the extreme."""
    if len(ordered) >= 50:
        cuts = statistics.quantiles(ordered, n=50)
        return cuts[0] if first else cuts[-1]
    return ordered[0] if first else ordered[-1]


class PollingPolicy:
    """Schedules per (provider, model), from what the history says and from every job that finishes here."""

    def __init__(self, history: Results | None, *, fixed_interval_s: float | None = None) -> None:
        self.history = history
        self.fixed_interval_s = fixed_interval_s
        self._seen: dict[tuple[str, str], deque[Interval]] = {}

    async def prepare(self, targets: Iterable[tuple[str, str]]) -> None:
        """Load the history of targets not seen yet in this process (once each)."""
        for target in targets:
            if target in self._seen or self.history is None:
                continue
            try:
                results = await self.history.results(*target, limit=MAX_SAMPLES)
            except Exception:  # the policy is an optimisation: a store problem must not stop a run
                log.warning("could not read the history of %s %s for polling", *target, exc_info=True)
                results = []
            self._seen[target] = deque(reversed([duration_of(r) for r in results]), maxlen=MAX_SAMPLES)

    def learn(self, event: JobEvent) -> None:
        """Take a finished job's duration into its (provider, model)'s schedule."""
        if event.result is not None and event.result.latency_low_s is not None:
            samples = self._seen.setdefault((event.provider, event.model), deque(maxlen=MAX_SAMPLES))
            samples.append(duration_of(event.result))

    def schedule(self, spec: ProviderSpec, model: str) -> Schedule:
        """When to read: PLAYGROUND_POLL_INTERVAL_S if the operator fixed it, else learned, else documented."""
        if self.fixed_interval_s:
            return FixedSchedule(self.fixed_interval_s, self.fixed_interval_s)
        documented = FixedSchedule(spec.poll.first_s, spec.poll.interval_s)
        return learned_schedule(list(self._seen.get((spec.name, model), ())), documented)
