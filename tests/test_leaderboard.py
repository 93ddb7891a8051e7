"""The ratings: a planted order is recovered, intervals cover the truth as often as they claim, ranks as LMArena."""

from __future__ import annotations

import numpy as np
import pytest

from playground.leaderboard import ANCHOR, ELO_PER_UNIT, Duel, fit, rate

PLANTED = np.array([1000.0, 1040.0, 1080.0, 1150.0])  # four hosts, worst to best, in Elo points
TRUTH = PLANTED - PLANTED.mean() + ANCHOR  # the board's anchor: established targets average 1000
HOSTS = [f"h{i}" for i in range(len(PLANTED))]
TIE_SHARE = 0.2


def simulate(votes: int, seed: int, *, tie_share: float = TIE_SHARE) -> list[Duel]:
    """Votes from the model the board fits: a tie with probability tie_share, else E[a's score] = sigmoid(gap)."""
    rng = np.random.default_rng(seed)
    strength = (PLANTED - PLANTED.mean()) / ELO_PER_UNIT
    a = rng.integers(0, len(HOSTS), votes)
    b = (a + rng.integers(1, len(HOSTS), votes)) % len(HOSTS)
    p_a = 1.0 / (1.0 + np.exp(-(strength[a] - strength[b])))
    u = rng.random(votes)
    outcome = np.where(u < tie_share, "tie", np.where(u < p_a + tie_share / 2, "a", "b"))
    return [Duel(HOSTS[x], HOSTS[y], str(o)) for x, y, o in zip(a, b, outcome, strict=True)]  # type: ignore[arg-type]


def columns(duels: list[Duel], **options) -> dict[str, np.ndarray]:
    board = {row.target: row for row in rate(duels, **options)}
    rows = [board[h] for h in HOSTS]
    return {name: np.array([getattr(r, name) for r in rows], dtype=float) for name in ("rating", "lower", "upper")}


def test_repeated_simulations_recover_the_order_and_cover_the_true_ratings():
    # Frequentist coverage: over 200 independent simulated datasets of 2,000 votes, how often does each
    # host's 95 % interval (200 bootstrap rounds each) contain its true rating? It must be at least 90 %.
    datasets, covered, ordered = 200, np.zeros(len(HOSTS)), 0
    for r in range(datasets):
        table = columns(simulate(2000, seed=10_000 + r), rounds=200, seed=r)
        covered += (table["lower"] <= TRUTH) & (TRUTH <= table["upper"])
        ordered += bool(np.all(np.diff(table["rating"]) > 0))
    assert ordered / datasets >= 0.97, ordered
    assert np.all(covered / datasets >= 0.90), covered / datasets


def test_one_dataset_of_two_thousand_votes_is_ordered_and_ranked():
    rows = rate(simulate(2000, seed=42), rounds=1000, seed=0)
    assert [row.target for row in rows] == ["h3", "h2", "h1", "h0"]
    table = columns(simulate(2000, seed=42), rounds=1000, seed=0)
    assert np.all((table["lower"] <= TRUTH) & (TRUTH <= table["upper"]))
    assert abs(table["rating"].mean() - ANCHOR) < 1e-6
    ranks = [row.rank for row in rows]
    assert ranks[0] == 1 and ranks == sorted(ranks)  # type: ignore[type-var]


def test_the_same_votes_and_seed_give_the_same_numbers():
    duels = simulate(500, seed=3)
    assert rate(duels, rounds=100, seed=7) == rate(list(reversed(duels)), rounds=100, seed=7)


def test_a_rank_counts_only_targets_whose_lower_bound_is_above_its_upper_bound():
    # a and b are close (overlapping intervals: both rank 1); c loses clearly to both (rank 3).
    duels = [Duel("a", "b", "a")] * 30 + [Duel("a", "b", "b")] * 28
    duels += [Duel("a", "c", "a")] * 40 + [Duel("b", "c", "a")] * 40 + [Duel("c", "a", "a")] * 2
    rows = {row.target: row for row in rate(duels, rounds=300)}
    assert rows["a"].rank == rows["b"].rank == 1
    assert rows["c"].rank == 3
    assert rows["a"].lower < rows["b"].upper and rows["c"].upper < rows["b"].lower


def test_ties_and_both_bad_count_half_a_win_each():
    rows = {r.target: r for r in rate([Duel("x", "y", "tie")] * 20 + [Duel("y", "x", "both_bad")] * 20, rounds=50)}
    assert rows["x"].rating == pytest.approx(rows["y"].rating) == pytest.approx(ANCHOR)
    assert rows["x"].ties == 40 and rows["x"].wins == 0 and rows["x"].losses == 0


def test_win_rate_and_tallies_per_target():
    duels = [Duel("x", "y", "a")] * 3 + [Duel("x", "y", "b")] + [Duel("y", "x", "tie")] * 2
    rows = {r.target: r for r in rate(duels, rounds=50, min_votes=1)}
    assert (rows["x"].wins, rows["x"].ties, rows["x"].losses, rows["x"].votes) == (3, 2, 1, 6)
    assert rows["x"].win_rate == pytest.approx(0.5) and rows["y"].win_rate == pytest.approx(1 / 6)


def test_a_target_that_never_lost_stays_finite():
    rows = {r.target: r for r in rate([Duel("x", "y", "a")] * 50, rounds=50)}
    assert np.isfinite([rows["x"].rating, rows["x"].upper]).all() and rows["x"].rating > rows["y"].rating


def test_few_votes_make_a_target_provisional_and_the_anchor_is_the_established_ones():
    duels = [Duel("x", "y", "a")] * 15 + [Duel("x", "y", "b")] * 15 + [Duel("x", "new", "a")] * 3
    rows = {r.target: r for r in rate(duels, rounds=50, min_votes=20)}
    assert rows["new"].rank is None and rows["new"].is_provisional
    assert rows["x"].rank == 1 and rows["y"].rank is not None
    assert (rows["x"].rating + rows["y"].rating) / 2 == pytest.approx(ANCHOR)


def test_targets_never_compared_fall_in_separate_groups():
    duels = [Duel("p", "q", "a")] * 25 + [Duel("p", "q", "b")] * 20 + [Duel("r", "s", "a")] * 25
    rows = rate(duels, rounds=50)
    groups = {r.target: r.group for r in rows}
    assert groups["p"] == groups["q"] != groups["r"] == groups["s"]
    assert [r.rank for r in rows if r.target in ("p", "r")] == [1, 1]


def test_self_matches_and_no_votes_give_an_empty_board():
    assert rate([]) == []
    assert rate([Duel("x", "x", "a")]) == []


def test_the_batched_fit_equals_separate_fits():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 9, size=(3, 4, 4)).astype(float)
    together = fit(points)
    apart = np.vstack([fit(points[i : i + 1]) for i in range(3)])
    assert np.allclose(together, apart, atol=1e-4)


def test_the_cli_defaults_are_the_boards_own():
    from playground import leaderboard, leaderboard_cli

    assert (leaderboard_cli.BOOTSTRAP_ROUNDS, leaderboard_cli.MIN_VOTES) == (
        leaderboard.BOOTSTRAP_ROUNDS,
        leaderboard.MIN_VOTES,
    )
