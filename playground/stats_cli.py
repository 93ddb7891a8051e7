"""``python -m playground stats``: provider figures across the recorded runs (the Providers tab's numbers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from playground.history import open_history
from playground.providers import REGISTRY
from playground.settings import Settings
from playground.stats import COLUMNS, MODES, NO_RUNS, TargetStats, as_csv, as_json, provider_stats, table_row

EXIT_OK = 0


def add_stats_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = subparsers.add_parser(
        "stats", help="per provider and model: success, latency, cost, size, over the history"
    )
    stats.add_argument("--json", action="store_true", help="a JSON array of rows on stdout")
    stats.add_argument("--csv", action="store_true", help="CSV on stdout (what the Providers tab exports)")
    stats.add_argument("--since", type=float, metavar="DAYS", help="only jobs of the last DAYS days")
    stats.add_argument("--mode", choices=tuple(MODES), help="only text-to-image (t2i) or edit runs")


async def run_stats_command(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store = open_history(settings.data_dir)
    try:
        rows = await provider_stats(store, REGISTRY, mode=args.mode, since_days=args.since)
    finally:
        await store.aclose()
    if args.json:
        out.write(json.dumps(as_json(rows), indent=2) + "\n")
    elif args.csv:
        out.write(as_csv(rows))
    elif not rows:
        out.write(NO_RUNS + "\n")
    else:
        out.write(_text(rows))
    return EXIT_OK


def _text(rows: list[TargetStats]) -> str:
    table = [[title for _, title in COLUMNS], *[[str(v) for v in table_row(r)] for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in table
    )
