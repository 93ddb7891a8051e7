"""The grid as HTML, without a browser: one tile per job in a stable order, the same parts whatever its state,
text escaped; the renderer sends it only when it changed."""

from __future__ import annotations

import re

import gradio as gr

from playground.models import JobEvent, JobResult, WireRequest
from playground.providers import REGISTRY
from playground.ui.board import Board
from playground.ui.grid import grid_html
from playground.ui.panels import Renderer

PRO = "flux-kontext-pro"
SENT = WireRequest(method="POST", url="https://x/y")


def event(provider: str, state: str, **kw) -> JobEvent:
    fields = dict(run_id="r1", provider=provider, provider_label=REGISTRY[provider].label, model=PRO, elapsed_s=1.5)
    return JobEvent(state=state, **(fields | kw))


def result(tmp_path, provider: str, size=(768, 768), cost=0.04, source="https://docs.bfl.ai/pricing") -> JobResult:
    path = tmp_path / f"{provider}-{PRO}.jpg"
    path.write_bytes(b"jpeg")
    w, h = size
    return JobResult(
        path=str(path),
        image_url="u",
        mime_type="image/jpeg",
        width=w,
        height=h,
        size_bytes=4,
        latency_s=2.5,
        cost_usd=cost,
        cost_source=source,
        sent=SENT,
    )


def board_of(tmp_path) -> Board:
    board = Board.start([("kie", PRO), ("bfl", PRO), ("apixo", PRO), ("fal", PRO)], REGISTRY)
    board.apply(event("kie", "failed", error="KIE AI said <b>no</b>.", kind="job_failed"))
    board.apply(event("bfl", "succeeded", task_id="t2", result=result(tmp_path, "bfl")))
    board.apply(event("apixo", "succeeded", task_id="t3", result=result(tmp_path, "apixo", (768, 432), 0.03)))
    board.apply(event("fal", "running", task_id="t4"))
    board.mark_shapes()
    return board


def test_every_job_is_a_tile_in_page_order_with_the_same_parts_whatever_its_state(tmp_path):
    html = grid_html(board_of(tmp_path), tab="text")
    tiles = re.findall(r'<div class="kx-tile" data-key="([^"]+)" data-phase="([^"]+)"', html)
    assert tiles == [
        (f"kie|{PRO}", "failed"),
        (f"bfl|{PRO}", "done"),
        (f"apixo|{PRO}", "done"),
        (f"fal|{PRO}", "running"),
    ]
    for part in ("kx-media", "kx-name", "kx-state", "kx-meta", "kx-actions"):
        assert html.count(f'class="{part}') == 4, part  # one of each per tile: same-size tiles line up


def test_a_tile_says_state_latency_cost_and_marks_the_shape_that_differs(tmp_path):
    html = grid_html(board_of(tmp_path), tab="text")
    assert "✔ done in 2.5 s" in html and "768×768 · $0.04" in html
    assert "⚠ 768×432 · $0.03" in html and "Its shape is 16:9; most results here are 1:1." in html
    assert "KIE AI said &lt;b&gt;no&lt;/b&gt;." in html and "<b>no</b>" not in html, "provider text is text"
    assert html.count('class="kx-pick-box"') == 2, "only results can be compared"
    assert "gradio_api/file=" in html and 'data-action="stop"' in html


def test_the_renderer_sends_the_grid_only_when_it_changed(tmp_path):
    board = board_of(tmp_path)
    renderer = Renderer("text", [("kie", PRO), ("bfl", PRO), ("apixo", PRO), ("fal", PRO)], sandbox=True)
    grid = renderer.head_slots.index("grid")
    first = renderer.frame(board, board.panels)
    assert first[grid].startswith('<div class="kx-grid"')
    assert renderer.frame(board, [("bfl", PRO)])[grid] == gr.skip(), "nothing in the grid changed"
    board.apply(event("fal", "succeeded", task_id="t4", result=result(tmp_path, "fal")))
    assert "fal.ai · pro" in renderer.frame(board, [("fal", PRO)])[grid]
