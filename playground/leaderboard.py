"""Ratings from pairwise votes: Bradley–Terry by maximum likelihood, bootstrap intervals, LMArena's ranks.

The model: target i beats target j with probability sigmoid(s_i - s_j). A tie (and "both bad", which says
neither is better) gives each side half a win; Davidson's explicit tie parameter is not used. A small ridge
penalty (``RIDGE``, a Gaussian prior on the strengths) keeps a target that never lost finite. Strengths are
shown on the Elo scale, 400 / ln 10 points per unit, anchored so that the established targets (at least
``MIN_VOTES`` votes) average 1000.

Intervals are percentile bootstraps: the votes, aggregated into (winner, loser, tie) cells, are resampled
with replacement (a multinomial draw of the same total), and every resample is refitted. All resamples are
fitted in ONE call to scipy's L-BFGS-B with the analytic gradient: their objectives are independent, so the
optimum of the sum is each one's optimum, and a vectorised objective is far faster than a loop of fits.

Ranks follow LMArena (FastChat's leaderboard): a target's rank is 1 + the number of established targets of
its connected group whose lower bound is above its upper bound; equal ranks are ordered by rating. A
provisional target (fewer than MIN_VOTES votes) gets no rank. Targets that were never compared with each
other, even through others, fall in different groups and are not ranked against each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.sparse.csgraph import connected_components
from scipy.special import log_expit

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Outcome = Literal["a", "b", "tie", "both_bad"]
OUTCOMES: tuple[Outcome, ...] = ("a", "b", "tie", "both_bad")

ELO_PER_UNIT = 400.0 / math.log(10.0)  # one natural-log unit of strength, in Elo points (about 173.7)
ANCHOR = 1000.0
RIDGE = 1.0  # strength of the Gaussian prior, in votes: negligible next to a few dozen votes
BOOTSTRAP_ROUNDS = 1000
LEVEL = 0.95
MIN_VOTES = 20
GRADIENT_TOLERANCE = 1e-3  # in votes; well under 0.2 Elo points even for a target with one vote


@dataclass(frozen=True)
class Duel:
    """One pairwise outcome: target ``a`` against target ``b``."""

    a: str
    b: str
    outcome: Outcome


@dataclass(frozen=True)
class Rating:
    """One target on the board. ``rank`` is None for a provisional target (too few votes)."""

    target: str
    rating: float
    lower: float
    upper: float
    rank: int | None
    votes: int
    wins: int
    ties: int
    losses: int
    group: int

    @property
    def win_rate(self) -> float:
        """Wins over all votes (a tie is not a win)."""
        return self.wins / self.votes if self.votes else 0.0

    @property
    def is_provisional(self) -> bool:
        return self.rank is None


@dataclass(frozen=True)
class _Cells:
    """The votes, aggregated: for each distinct (first, second, is_tie) cell, how many votes fell in it.

    ``first`` is the winner (either side for a tie), ``second`` the loser.
    """

    first: Ints
    second: Ints
    tie: Ints
    count: Floats
    size: int

    def points(self, counts: Floats) -> Floats:
        """Points matrices, one per row of ``counts``: W[r, i, j] = what i scored against j."""
        share = np.where(self.tie == 1, 0.5, 1.0)
        spread = np.zeros((len(self.first), self.size * self.size))  # cell -> where its points go
        cell = np.arange(len(self.first))
        spread[cell, self.first * self.size + self.second] = share
        spread[cell, self.second * self.size + self.first] = share * self.tie
        return (counts @ spread).reshape(counts.shape[0], self.size, self.size)


def rate(
    duels: Iterable[Duel],
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
    ridge: float = RIDGE,
    seed: int = 0,
    level: float = LEVEL,
    min_votes: int = MIN_VOTES,
) -> list[Rating]:
    """Every target's rating, interval and rank: ranked ones first by rank then rating, then provisional ones.

    ``seed`` fixes the bootstrap, so the same votes always give the same numbers.
    """
    kept = [d for d in duels if d.a != d.b]  # a target against itself says nothing
    if not kept:
        return []
    names = sorted({d.a for d in kept} | {d.b for d in kept})
    cells = _aggregate(kept, {name: i for i, name in enumerate(names)})
    points = cells.points(cells.count[None, :])
    played = points[0] + points[0].T
    votes = played.sum(axis=1)
    _, group = connected_components(played > 0, directed=False)
    established = votes >= min_votes
    anchor = established if established.any() else np.ones(len(names), dtype=bool)
    strength = fit(points, ridge)[0]
    rng = np.random.default_rng(seed)
    total = int(cells.count.sum())
    resampled = rng.multinomial(total, cells.count / total, size=rounds).astype(np.float64)
    boot = fit(cells.points(resampled), ridge, start=strength)
    rating = _elo(strength[None, :], anchor)[0]
    tail = 100.0 * (1.0 - level) / 2.0
    lower, upper = np.percentile(_elo(boot, anchor), [tail, 100.0 - tail], axis=0)
    ranks = [_rank(k, lower, upper, group, established) for k in range(len(names))]
    wins, ties = _tallies(cells, len(names))
    rows = [
        Rating(
            target=names[k],
            rating=float(rating[k]),
            lower=float(lower[k]),
            upper=float(upper[k]),
            rank=ranks[k],
            votes=int(votes[k]),
            wins=int(wins[k]),
            ties=int(ties[k]),
            losses=int(votes[k] - wins[k] - ties[k]),
            group=int(group[k]),
        )
        for k in range(len(names))
    ]
    return sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, -r.rating))


def fit(points: Floats, ridge: float = RIDGE, *, start: Floats | None = None) -> Floats:
    """Penalised maximum-likelihood strengths for a batch of points matrices (B, n, n): shape (B, n).

    One L-BFGS-B call for the whole batch. RuntimeError if the optimiser stops with a gradient still large.
    """
    batch, n, _ = points.shape
    first, second = np.triu_indices(n, k=1)
    met = (points[:, first, second] + points[:, second, first]).any(axis=0)  # only pairs that ever met count
    first, second = first[met], second[met]
    incidence = np.zeros((len(first), n))  # pair -> +1 for its first target, -1 for its second
    incidence[np.arange(len(first)), first] = 1.0
    incidence[np.arange(len(first)), second] = -1.0
    scored = (points[:, first, second], points[:, second, first])
    x0 = np.zeros(batch * n) if start is None else np.broadcast_to(start, (batch, n)).ravel()
    found = minimize(
        _objective,
        x0,
        args=(scored, incidence, ridge),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 1000, "gtol": 1e-6, "ftol": 1e-15},
    )
    # The line search may report "abnormal termination" at the float precision of the summed objective;
    # what matters is how close to zero the gradient is.
    if float(np.abs(found.jac).max()) > GRADIENT_TOLERANCE:
        raise RuntimeError(f"the Bradley–Terry fit did not converge: {found.message}")
    return np.asarray(found.x, dtype=np.float64).reshape(batch, n)


def _objective(x: Floats, scored: tuple[Floats, Floats], incidence: Floats, ridge: float) -> tuple[float, Floats]:
    """Negative penalised log-likelihood of the batch, and its gradient, over the pairs that met.

    ``scored``: (B, pairs) points of each pair's first target against its second, and the reverse.
    """
    ahead, behind = scored
    strength = x.reshape(ahead.shape[0], incidence.shape[1])
    gap = strength @ incidence.T  # strength of the pair's first target minus its second's
    log_p, log_q = log_expit(gap), log_expit(-gap)
    value = -(ahead * log_p + behind * log_q).sum() + 0.5 * ridge * (strength * strength).sum()
    slope = (ahead + behind) * np.exp(log_p) - ahead  # d value / d gap
    return float(value), (slope @ incidence + ridge * strength).ravel()


def _aggregate(duels: list[Duel], index: dict[str, int]) -> _Cells:
    rows = np.array([(index[d.a], index[d.b], OUTCOMES.index(d.outcome)) for d in duels], dtype=np.int64)
    a, b, outcome = rows.T
    b_won = outcome == 1
    tie = (outcome >= 2).astype(np.int64)
    first, second = np.where(b_won, b, a), np.where(b_won, a, b)
    cells, count = np.unique(np.c_[first, second, tie], axis=0, return_counts=True)
    return _Cells(cells[:, 0], cells[:, 1], cells[:, 2], count.astype(np.float64), len(index))


def _elo(strength: Floats, anchor: npt.NDArray[np.bool_]) -> Floats:
    """Strengths (B, n) on the Elo scale, each row anchored so that the anchor targets average 1000."""
    centred = strength - strength[:, anchor].mean(axis=1, keepdims=True)
    return np.asarray(ANCHOR + ELO_PER_UNIT * centred, dtype=np.float64)


def _rank(k: int, lower: Floats, upper: Floats, group: Ints, established: npt.NDArray[np.bool_]) -> int | None:
    if not established[k]:
        return None
    clearly_better = (lower > upper[k]) & (group == group[k]) & established
    return 1 + int(clearly_better.sum())


def _tallies(cells: _Cells, n: int) -> tuple[Floats, Floats]:
    """(wins, ties) per target."""
    decided = cells.count * (cells.tie == 0)
    tied = cells.count * cells.tie
    wins = np.bincount(cells.first, weights=decided, minlength=n).astype(np.float64)
    ties = np.bincount(cells.first, weights=tied, minlength=n) + np.bincount(cells.second, weights=tied, minlength=n)
    return wins, ties.astype(np.float64)
