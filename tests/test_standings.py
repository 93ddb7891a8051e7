"""The board people read: views, history facts per row, text, CSV, JSONL, and the leaderboard command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from playground.cli import main
from playground.history import JobFact, SqliteHistory
from playground.providers import REGISTRY
from playground.settings import Settings
from playground.standings import HEADERS, board_csv, board_json, board_of, cells, table, text, votes_jsonl
from tests.test_history_votes import vote

PRO, MAX = "flux-kontext-pro", "flux-kontext-max"


def votes_between(a: str, b: str, model: str, wins: int, losses: int, ties: int = 0, **kw: object) -> list:
    outcomes = ["a"] * wins + ["b"] * losses + ["tie"] * ties
    return [
        vote(f"{a}-{b}-{model}-{i}", a_provider=a, a_model=model, b_provider=b, b_model=model, outcome=o, **kw)
        for i, o in enumerate(outcomes)
    ]


VOTES = votes_between("kie", "bfl", PRO, 8, 22) + votes_between("apixo", "bfl", MAX, 15, 10, 5)
FACTS = [
    JobFact(provider="kie", model=PRO, state="succeeded", latency_s=3.0, cost_usd=0.02),
    JobFact(provider="kie", model=PRO, state="succeeded", latency_s=5.0, cost_usd=0.03),
    JobFact(provider="kie", model=PRO, state="failed", latency_s=60.0),
    JobFact(provider="kie", model=PRO, state="stopped", latency_s=1.0),  # says nothing about the host
    JobFact(provider="bfl", model=PRO, state="succeeded", latency_s=2.0),  # no billed cost: the listed price
]


def test_the_same_model_view_ranks_the_hosts_of_each_model_separately():
    board = board_of(VOTES, FACTS, mode="t2i", same_model=True, rounds=200, min_votes=10)
    assert [(row.model, row.target) for row in board.rows] == [(PRO, "bfl"), (PRO, "kie"), (MAX, "apixo"), (MAX, "bfl")]
    assert board.votes == 60
    bfl_pro = board.rows[0]
    assert (bfl_pro.rank, bfl_pro.votes, bfl_pro.wins) == (1, 30, 22)
    rows = table(board)
    assert rows[0][0] == "FLUX.1 Kontext [pro]" and rows[3][0] == "FLUX.1 Kontext [max]"


def test_the_targets_view_rates_every_provider_and_model_on_one_board():
    board = board_of(VOTES, FACTS, mode="t2i", same_model=False, rounds=200, min_votes=10)
    assert {row.target for row in board.rows} == {
        "kie:flux-kontext-pro",
        "bfl:flux-kontext-pro",
        "apixo:flux-kontext-max",
        "bfl:flux-kontext-max",
    }
    assert {row.label for row in board.rows} >= {"KIE AI [pro]", "Black Forest Labs [max]"}


def test_each_row_carries_p50_latency_success_rate_and_price_from_the_history():
    board = board_of(VOTES, FACTS, mode="t2i", same_model=True, rounds=50)
    rows = {(row.model, row.target): row for row in board.rows}
    kie = rows[(PRO, "kie")]
    assert (kie.p50_latency_s, kie.success_rate, kie.jobs) == (4.0, pytest.approx(2 / 3), 3)
    assert kie.price_usd == pytest.approx(0.025)  # the mean billed cost
    assert rows[(PRO, "bfl")].price_usd == REGISTRY["bfl"].prices[PRO].usd  # nothing billed: the listed price
    apixo = rows[(MAX, "apixo")]
    assert (apixo.p50_latency_s, apixo.success_rate, apixo.jobs) == (None, None, 0)


def test_a_row_as_the_tab_and_the_cli_show_it():
    row = next(
        r
        for r in board_of(VOTES, FACTS, mode="t2i", same_model=True, rounds=50, min_votes=10).rows
        if r.target == "kie"
    )
    shown = dict(zip(HEADERS, cells(row), strict=True))
    assert shown["rank"] == str(row.rank) and shown["target"] == "KIE AI"
    assert shown["95% interval"] == f"{row.lower:.0f} to {row.upper:.0f}"
    assert (shown["win rate"], shown["p50 latency"], shown["success"], shown["price"]) == (
        "27%",
        "4.0 s",
        "67% of 3",
        "$0.025",
    )
    provisional = board_of(VOTES[:3], [], mode="t2i", same_model=True, rounds=50).rows[0]
    assert cells(provisional)[0] == "provisional" and "too few votes" in cells(provisional)[3]


def test_the_csv_has_every_number_unrounded_and_the_json_the_same_rows():
    board = board_of(VOTES, FACTS, mode="t2i", same_model=True, rounds=50)
    parsed = list(csv.DictReader(io.StringIO(board_csv(board))))
    assert [float(r["rating"]) for r in parsed] == pytest.approx([row["rating"] for row in board_json(board)])
    assert set(parsed[0]) == set(board_json(board)[0])


def test_exported_votes_hide_the_owner_id_but_tell_voters_apart():
    lines = [
        json.loads(line)
        for line in votes_jsonl([vote("r1", owner="secret-owner-id"), vote("r2", owner="x")]).splitlines()
    ]
    assert all("owner" not in line for line in lines) and "secret-owner-id" not in json.dumps(lines)
    assert lines[0]["voter"] != lines[1]["voter"] and lines[0]["round_id"] == "r1" and lines[0]["a_task_id"] == "task-a"


def test_an_empty_board_says_how_to_get_votes():
    assert "No votes yet" in text(board_of([], [], mode="edit", same_model=False))


@pytest.fixture
async def seeded(tmp_path: Path) -> Settings:
    store = SqliteHistory.open(tmp_path / "data")
    await store.record_votes(VOTES)
    await store.aclose()
    return Settings(data_dir=tmp_path / "data")


def test_the_leaderboard_command_prints_text_json_csv_and_the_votes(seeded, tmp_path, capsys):
    assert main(["leaderboard", "--same-model", "--rounds", "100"], settings=seeded) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("text-to-image leaderboard, hosts of each model ranked separately: 60 votes")
    assert "Black Forest Labs" in printed and "as LMArena ranks" in printed
    out_csv, out_votes = tmp_path / "board.csv", tmp_path / "votes.jsonl"
    args = ["leaderboard", "--json", "--rounds", "100", "--csv", str(out_csv), "--export-votes", str(out_votes)]
    assert main(args, settings=seeded) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["target"] for row in rows} == {
        "kie:flux-kontext-pro",
        "bfl:flux-kontext-pro",
        "apixo:flux-kontext-max",
        "bfl:flux-kontext-max",
    }
    assert len(out_csv.read_text().splitlines()) == 1 + len(rows)
    assert len(out_votes.read_text().splitlines()) == len(VOTES)


def test_the_leaderboard_command_reads_one_mode_and_refuses_bad_numbers(seeded, capsys):
    assert main(["leaderboard", "--mode", "edit", "--json"], settings=seeded) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["leaderboard", "--rounds", "0"], settings=seeded) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
