"""The leaderboard as people read it: quality (ratings from the arena's votes) next to speed, reliability and
price (from the history), one row per target. The CLI and the Arena tab both build it here, so for the same
database they show the same numbers (the bootstrap is seeded).

Two views: every provider x model target on one board, or "same model": the hosts of each model ranked
among themselves, from the votes where both sides ran that model.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from playground.history import History, JobFact, Vote, VoteMode
from playground.leaderboard import BOOTSTRAP_ROUNDS, LEVEL, MIN_VOTES, Duel, Rating, rate
from playground.models import MODELS, model_info
from playground.providers import REGISTRY, ProviderSpec

KIND_OF_MODE: dict[VoteMode, str] = {"t2i": "generate", "edit": "edit"}
MODE_NAMES: dict[VoteMode, str] = {"t2i": "text-to-image", "edit": "edit"}
HEADERS = ("rank", "target", "rating", "95% interval", "votes", "win rate", "p50 latency", "success", "price")
FINISHED = ("succeeded", "failed", "canceled")  # stopped jobs say nothing about the host


@dataclass(frozen=True)
class BoardRow:
    """One target: its rating with interval and rank, its votes, and what the history says of its jobs."""

    model: str | None  # the same-model view: the model whose hosts this row ranks
    target: str  # "provider:model", or the provider alone in the same-model view
    label: str
    rank: int | None
    rating: float
    lower: float
    upper: float
    votes: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    p50_latency_s: float | None
    success_rate: float | None
    jobs: int
    price_usd: float | None


@dataclass(frozen=True)
class JobStats:
    """What the history says of one target's finished jobs."""

    p50_latency_s: float | None
    success_rate: float | None
    jobs: int
    price_usd: float | None


@dataclass(frozen=True)
class Board:
    """The rows, best first (per model in the same-model view), and the votes they come from."""

    mode: VoteMode
    same_model: bool
    votes: int
    rows: tuple[BoardRow, ...]

    def title(self) -> str:
        view = "hosts of each model ranked separately" if self.same_model else "every provider x model"
        return f"{MODE_NAMES[self.mode]} leaderboard, {view}: {self.votes} vote{'s' * (self.votes != 1)}"


async def build_board(
    history: History,
    *,
    mode: VoteMode = "t2i",
    same_model: bool = False,
    specs: Mapping[str, ProviderSpec] = REGISTRY,
    rounds: int = BOOTSTRAP_ROUNDS,
    min_votes: int = MIN_VOTES,
) -> Board:
    """The board for ``mode`` from the history's votes and jobs (the fit runs off the event loop)."""
    votes = await history.list_votes(mode=mode)
    facts = await history.job_facts(kind=KIND_OF_MODE[mode])
    return await asyncio.to_thread(
        board_of, votes, facts, mode=mode, same_model=same_model, specs=specs, rounds=rounds, min_votes=min_votes
    )


def board_of(
    votes: Sequence[Vote],
    facts: Sequence[JobFact],
    *,
    mode: VoteMode,
    same_model: bool,
    specs: Mapping[str, ProviderSpec] = REGISTRY,
    rounds: int = BOOTSTRAP_ROUNDS,
    min_votes: int = MIN_VOTES,
) -> Board:
    """The board from votes and job facts already read (pure: the same inputs give the same numbers)."""
    stats = _job_stats(facts, specs)
    rows: list[BoardRow] = []
    if same_model:
        for model in MODELS:
            duels = [Duel(v.a_provider, v.b_provider, v.outcome) for v in votes if v.a_model == v.b_model == model]
            ratings = rate(duels, rounds=rounds, min_votes=min_votes)
            rows += [_row(r, r.target, model, model, stats, specs) for r in ratings]
        counted = sum(v.a_model == v.b_model for v in votes)
    else:
        duels = [Duel(f"{v.a_provider}:{v.a_model}", f"{v.b_provider}:{v.b_model}", v.outcome) for v in votes]
        for r in rate(duels, rounds=rounds, min_votes=min_votes):
            provider, model = r.target.split(":", 1)
            rows.append(_row(r, provider, model, None, stats, specs))
        counted = len(votes)
    return Board(mode, same_model, counted, tuple(rows))


def _row(
    rating: Rating,
    provider: str,
    model: str,
    view_model: str | None,
    stats: Mapping[tuple[str, str], JobStats],
    specs: Mapping[str, ProviderSpec],
) -> BoardRow:
    found = stats.get((provider, model)) or JobStats(None, None, 0, _list_price(specs, provider, model))
    spec = specs.get(provider)
    label = spec.label if spec else provider
    short = model_info(model).short
    return BoardRow(
        model=view_model,
        target=rating.target,
        label=label if view_model else f"{label} [{short}]",
        rank=rating.rank,
        rating=rating.rating,
        lower=rating.lower,
        upper=rating.upper,
        votes=rating.votes,
        wins=rating.wins,
        ties=rating.ties,
        losses=rating.losses,
        win_rate=rating.win_rate,
        p50_latency_s=found.p50_latency_s,
        success_rate=found.success_rate,
        jobs=found.jobs,
        price_usd=found.price_usd,
    )


def _job_stats(facts: Iterable[JobFact], specs: Mapping[str, ProviderSpec]) -> dict[tuple[str, str], JobStats]:
    """(provider, model) -> median latency of successes, success rate of finished jobs, how many, price.

    The price is the mean billed cost of the successes when the history has one, else the listed price.
    """
    grouped: dict[tuple[str, str], list[JobFact]] = {}
    for fact in facts:
        if fact.state in FINISHED:
            grouped.setdefault((fact.provider, fact.model), []).append(fact)
    stats: dict[tuple[str, str], JobStats] = {}
    for (provider, model), jobs in grouped.items():
        done = [job for job in jobs if job.state == "succeeded"]
        latencies = [job.latency_s for job in done if job.latency_s is not None]
        costs = [job.cost_usd for job in done if job.cost_usd is not None]
        price = statistics.fmean(costs) if costs else _list_price(specs, provider, model)
        p50 = statistics.median(latencies) if latencies else None
        stats[(provider, model)] = JobStats(p50, len(done) / len(jobs), len(jobs), price)
    return stats


def _list_price(specs: Mapping[str, ProviderSpec], provider: str, model: str) -> float | None:
    spec = specs.get(provider)
    price = spec.prices.get(model) if spec else None
    return price.usd if price else None


# --- as text, as a table, as files ------------------------------------------------------------------

RANK_NOTE = (
    f"Ratings: Bradley-Terry, ties and 'both bad' as half a win each, Elo scale around 1000, {LEVEL:.0%} bootstrap "
    "intervals. Rank: 1 + the number of targets whose interval lies wholly above this one (as LMArena ranks); "
    f"'provisional' means fewer than {MIN_VOTES} votes."
)


def cells(row: BoardRow) -> list[str]:
    """The row as the tab and the CLI print it, in HEADERS order."""
    return [
        str(row.rank) if row.rank is not None else "provisional",
        row.label,
        f"{row.rating:.0f}",
        f"{row.lower:.0f} to {row.upper:.0f}" if row.rank is not None else "– (too few votes)",
        str(row.votes),
        f"{row.win_rate:.0%}",
        f"{row.p50_latency_s:.1f} s" if row.p50_latency_s is not None else "–",
        f"{row.success_rate:.0%} of {row.jobs}" if row.success_rate is not None else "–",
        f"${row.price_usd:.3f}" if row.price_usd is not None else "unknown",
    ]


def table(board: Board) -> list[list[str]]:
    """Rows of cells; in the same-model view each model's hosts come under a line naming the model."""
    out: list[list[str]] = []
    current: str | None = None
    for row in board.rows:
        if board.same_model and row.model is not None and row.model != current:
            current = row.model
            out.append([model_info(row.model).name] + [""] * (len(HEADERS) - 1))
        out.append(cells(row))
    return out


def text(board: Board) -> str:
    """The board as aligned text, with its title and how ranks are read."""
    if not board.rows:
        return f"{board.title()}\nNo votes yet: vote in the Arena tab of the app (python app.py).\n"
    rows = [list(HEADERS), *table(board)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([board.title(), *lines, "", RANK_NOTE]) + "\n"


def board_json(board: Board) -> list[dict[str, object]]:
    """The rows as JSON objects (the CLI's --json; the CSV has the same columns)."""
    return [asdict(row) for row in board.rows]


def board_csv(board: Board) -> str:
    """The board as CSV, every number unrounded."""
    out = io.StringIO()
    rows = board_json(board)
    writer = csv.DictWriter(out, fieldnames=list(BoardRow.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def votes_jsonl(votes: Iterable[Vote]) -> str:
    """One JSON object per vote. The visitor's owner id is replaced by a hash of it: the id itself opens that
    visitor's history on a shared page, while the hash still tells one voter from another."""
    lines = []
    for vote in votes:
        data = vote.model_dump(mode="json", exclude={"owner"})
        data["voter"] = hashlib.sha256(vote.owner.encode()).hexdigest()[:16]
        lines.append(json.dumps(data, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)
