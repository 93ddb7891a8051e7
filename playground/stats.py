"""Provider figures across recorded runs: one row per (provider, model), computed the same way for the
Providers tab, ``python -m playground stats`` and its CSV export."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from playground.history import History, JobRecord
from playground.models import MODELS
from playground.providers import ProviderSpec

FEW_RUNS = 10  # fewer finished jobs than this: the row says its figures are thin
MODES = {"t2i": "generate", "edit": "edit"}  # the CLI's and the tab's words -> the stored run kind
NO_RUNS = (
    "No finished jobs recorded yet. Run a comparison on the Text to image or Edit tab (sandbox mode needs no "
    'keys), or `python -m playground generate --sandbox --provider kie --provider fal --prompt "a red fox"`; '
    "every job lands here."
)


@dataclass(frozen=True)
class TargetStats:
    """What the history says about one provider and model."""

    provider: str
    label: str
    model: str
    jobs: int
    succeeded: int
    moderated: int
    success_rate: float
    moderation_rate: float
    p50_s: float | None
    p95_s: float | None
    mean_error_s: float | None
    mean_cost_usd: float | None
    typical_kb: int | None
    formats: str
    few: bool
    latencies_s: list[float] = field(default_factory=list, repr=False)


def window(days: float | None, *, now: datetime | None = None) -> datetime | None:
    """The start of the last ``days`` days (None: all of the history)."""
    return None if days is None else (now or datetime.now(UTC)) - timedelta(days=days)


async def provider_stats(
    history: History, specs: Mapping[str, ProviderSpec], *, mode: str | None = None, since_days: float | None = None
) -> list[TargetStats]:
    """One row per (provider, model) that has finished jobs in the window, in registry order."""
    jobs = await history.finished_jobs(since=window(since_days), kind=MODES.get(mode or "", None))
    return summarize(jobs, specs)


def summarize(jobs: Iterable[JobRecord], specs: Mapping[str, ProviderSpec]) -> list[TargetStats]:
    groups: dict[tuple[str, str], list[JobRecord]] = {}
    for job in jobs:
        groups.setdefault((job.provider, job.model), []).append(job)
    order = {name: i for i, name in enumerate(specs)}
    keys = sorted(groups, key=lambda k: (order.get(k[0], len(order)), MODELS.index(k[1]) if k[1] in MODELS else 99))
    return [_row(provider, model, groups[(provider, model)], specs) for provider, model in keys]


def _row(provider: str, model: str, jobs: Sequence[JobRecord], specs: Mapping[str, ProviderSpec]) -> TargetStats:
    done = [job for job in jobs if job.state == "succeeded"]
    results = [job.result for job in done if job.result is not None]
    latencies = sorted(job.latency_s for job in done if job.latency_s is not None)
    errors = [r.latency_error_s for r in results if r.latency_error_s is not None]
    costs = [job.cost_usd for job in done if job.cost_usd is not None]
    moderated = sum(job.error_kind == "moderated" for job in jobs)
    spec = specs.get(provider)
    return TargetStats(
        provider=provider,
        label=spec.label if spec else provider,
        model=model,
        jobs=len(jobs),
        succeeded=len(done),
        moderated=moderated,
        success_rate=len(done) / len(jobs),
        moderation_rate=moderated / len(jobs),
        p50_s=_percentile(latencies, 50),
        p95_s=_percentile(latencies, 95),
        mean_error_s=round(statistics.fmean(errors), 3) if errors else None,
        mean_cost_usd=round(statistics.fmean(costs), 4) if costs else None,
        typical_kb=round(statistics.median(r.size_bytes for r in results) / 1024) if results else None,
        formats=_formats(r.mime_type for r in results),
        few=len(jobs) < FEW_RUNS,
        latencies_s=latencies,
    )


def _percentile(ordered: Sequence[float], p: int) -> float | None:
    """The p-th percentile (nearest rank on a sorted list); None when there is nothing."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return round(ordered[rank], 3)


def _formats(mimes: Iterable[str]) -> str:
    counts = Counter(mime.split("/")[-1].upper() for mime in mimes)
    total = sum(counts.values())
    return ", ".join(f"{fmt} {round(100 * n / total)} %" for fmt, n in counts.most_common()) if total else ""


# --- one table for the tab, the CLI and the CSV --------------------------------------------------------------

COLUMNS = (
    ("provider", "Provider"),
    ("model", "Model"),
    ("jobs", "Jobs"),
    ("success_rate", "Success"),
    ("moderation_rate", "Moderated"),
    ("p50_s", "p50 latency (s)"),
    ("p95_s", "p95 latency (s)"),
    ("mean_error_s", "Uncertainty (s)"),
    ("mean_cost_usd", "Mean cost ($)"),
    ("typical_kb", "Typical size (KB)"),
    ("formats", "Formats"),
    ("note", "Note"),
)


def table_row(row: TargetStats) -> list[object]:
    """The row as the tab, the CLI and the CSV show it, in COLUMNS order."""
    values = asdict(row) | {
        "provider": row.label,
        "model": row.model.removeprefix("flux-kontext-"),
        "success_rate": f"{100 * row.success_rate:.0f} %",
        "moderation_rate": f"{100 * row.moderation_rate:.0f} %",
        "note": f"only {row.jobs} job{'s' if row.jobs != 1 else ''}: figures are thin" if row.few else "",
    }
    return ["" if values[name] is None else values[name] for name, _ in COLUMNS]


def as_csv(rows: Sequence[TargetStats]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    writer.writerows(table_row(row) for row in rows)
    return out.getvalue()


def as_json(rows: Sequence[TargetStats]) -> list[dict[str, object]]:
    return [{k: v for k, v in asdict(row).items() if k != "latencies_s"} for row in rows]
