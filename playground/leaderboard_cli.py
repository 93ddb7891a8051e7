"""``python -m playground leaderboard``: the arena's board from the history, as text, JSON or CSV; votes as JSONL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from playground.errors import InvalidInputError
from playground.history import open_history
from playground.settings import Settings

EXIT_OK = 0
# Written here as well as in playground.leaderboard, which loads scipy: no other command should pay for that.
BOOTSTRAP_ROUNDS, MIN_VOTES = 1000, 20


def add_leaderboard_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``leaderboard`` to the CLI."""
    board = subparsers.add_parser(
        "leaderboard", help="the arena's ratings per target, with p50 latency, success rate and price"
    )
    board.add_argument("--mode", choices=("t2i", "edit"), default="t2i", help="which board (default t2i)")
    board.add_argument(
        "--same-model", action="store_true", help="rank the hosts of each model among themselves (pro, max)"
    )
    board.add_argument("--json", action="store_true", help="the rows as a JSON array on stdout")
    board.add_argument("--csv", type=Path, metavar="FILE", help="also write the board to FILE as CSV")
    board.add_argument("--export-votes", type=Path, metavar="FILE", help="also write the mode's votes as JSONL")
    board.add_argument("--rounds", type=int, default=BOOTSTRAP_ROUNDS, help="bootstrap rounds (default 1000)")
    board.add_argument("--min-votes", type=int, default=MIN_VOTES, help="fewer votes: provisional, no rank")


async def run_leaderboard_command(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None) -> int:
    """Print the board (text or --json); write --csv and --export-votes files when asked."""
    from playground.standings import board_csv, board_json, build_board, text, votes_jsonl

    if args.rounds < 1 or args.min_votes < 0:
        raise InvalidInputError("--rounds must be at least 1 and --min-votes at least 0.")
    out = out or sys.stdout
    store = open_history(settings.data_dir)
    try:
        board = await build_board(
            store, mode=args.mode, same_model=args.same_model, rounds=args.rounds, min_votes=args.min_votes
        )
        if args.export_votes:
            args.export_votes.write_text(votes_jsonl(await store.list_votes(mode=args.mode)), encoding="utf-8")
    finally:
        await store.aclose()
    if args.csv:
        args.csv.write_text(board_csv(board), encoding="utf-8")
    out.write(json.dumps(board_json(board), indent=2) + "\n" if args.json else text(board))
    return EXIT_OK
