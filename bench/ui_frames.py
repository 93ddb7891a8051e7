"""Benchmark: what one streamed update of a live tab costs the server, by tab, with and without the grid.

Gradio rebuilds a component for every output of every yield, changed or skipped, so a tab's per-update cost
grows with its number of outputs. The comparison grid is one output however many jobs a run has; this prints
each tab's output count and the time Gradio's postprocessing takes for a typical update (every running
panel's time refreshed, so every tile changes), and for the same update without the grid's HTML.

.venv/bin/python bench/ui_frames.py            # 16 jobs on the Edit tab, 14 on Text to image
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from playground.models import JobEvent
from playground.service import GenerationService
from playground.settings import Settings
from playground.ui.board import Board
from playground.ui.panels import Renderer
from playground.ui.runtime import build_page

ROUNDS = 12


async def tick_cost(demo: gr.Blocks, api_name: str, board: Board, renderer: Renderer, *, grid: bool) -> float:
    """Median seconds Gradio spends postprocessing one update in which every running panel ticked."""
    fn = next(f for f in demo.fns.values() if f.api_name == api_name)
    await demo.postprocess_data(fn, renderer.frame(board, board.panels, hide_others=True), None)
    times = []
    for _ in range(ROUNDS):
        for panel in board.panels.values():
            panel.elapsed_s += 1.0
        frame = renderer.frame(board, board.panels)
        if not grid:
            frame[renderer.head_slots.index("grid")] = gr.skip()
        start = time.perf_counter()
        await demo.postprocess_data(fn, frame, None)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def running_board(page: object, kind: str) -> Board:
    handlers = page.handlers  # type: ignore[attr-defined]
    keys = [k for k in handlers.keys if kind == "edit" or handlers.specs[k[0]].capabilities.text_to_image]
    board = Board.start(keys, handlers.specs, edit=kind == "edit")
    for provider, model in keys:
        fields = dict(run_id="bench", provider=provider, provider_label=provider, model=model, elapsed_s=1.0)
        board.apply(JobEvent(state="running", task_id=f"t-{provider}-{model}", **fields))
    return board


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        service = GenerationService(Settings(out_dir=Path(tmp) / "out", data_dir=Path(tmp) / "data", sandbox=True))
        page = build_page(service, share=False, environ={"PLAYGROUND_BROWSER_SECRET": "bench"})
        for kind, api_name in (("text", "generate"), ("edit", "edit")):
            board = running_board(page, kind)
            fn = next(f for f in page.demo.fns.values() if f.api_name == api_name)
            with_grid = await tick_cost(
                page.demo, api_name, board, Renderer(kind, page.handlers.keys, sandbox=True), grid=True
            )
            without = await tick_cost(
                page.demo, api_name, board, Renderer(kind, page.handlers.keys, sandbox=True), grid=False
            )
            print(
                f"{kind:>4} tab: {len(fn.outputs)} outputs, {len(board.panels)} running jobs; one update "
                f"{with_grid * 1000:.0f} ms with the grid, {without * 1000:.0f} ms without it "
                f"({with_grid / len(fn.outputs) * 1e6:.0f} us per output)"
            )


if __name__ == "__main__":
    asyncio.run(main())
