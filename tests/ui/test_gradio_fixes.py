"""The Gradio workarounds change what Gradio costs, not what a visitor sees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from playground.ui.gradio_fixes import apply_gradio_fixes


@pytest.fixture
def blocks():
    apply_gradio_fixes()
    with gr.Blocks() as demo:
        boxes = [gr.Textbox(label=f"box {i}") for i in range(3)]
        hidden = gr.Markdown(visible=False)
    return demo, boxes, hidden


def postprocess(demo, outputs, predictions, state):
    fn = type("Fn", (), {"outputs": outputs, "batch": False, "is_validator_function": False, "postprocess": True})()
    return asyncio.run(demo.postprocess_data(fn, predictions, state))


def test_unchanged_outputs_go_out_as_gradios_own_no_change_and_the_others_as_before(blocks, monkeypatch):
    demo, boxes, hidden = blocks
    built = []
    original = gr.Textbox.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("label"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(gr.Textbox, "__init__", counting)
    state = SessionState(demo)
    out = postprocess(demo, [*boxes, hidden], [gr.skip(), "hello", gr.skip(), gr.update(visible=True)], state)
    assert out[0] == out[2] == {"__type__": "update"}, "what Gradio sends for gr.skip()"
    assert out[1] == "hello"
    assert out[3]["visible"] is True and out[3]["__type__"] == "update"
    assert built == [], "no component was rebuilt for the skipped outputs"


def test_a_single_changed_output_among_many_keeps_its_place(blocks):
    demo, boxes, _ = blocks
    out = postprocess(demo, boxes, [gr.skip(), gr.skip(), "only me"], SessionState(demo))
    assert out == [{"__type__": "update"}, {"__type__": "update"}, "only me"]


def test_a_new_session_builds_no_copy_of_every_blocks_config_and_still_keeps_state(blocks):
    demo, boxes, _ = blocks
    state = SessionState(demo)
    assert state.config_values == {}
    replacement = gr.Textbox(label="replaced", render=False)
    state[boxes[0]._id] = replacement
    assert state[boxes[0]._id] is replacement and state.config_values == {}
    assert "config_for_block" not in vars(state.blocks_config), "the per-call shadow is removed again"


def test_an_unchanged_output_is_not_sent_as_a_diff_that_deletes_what_the_frame_before_set(blocks):
    demo, boxes, _ = blocks
    fn = type("Fn", (), {"outputs": boxes})()
    first = demo.handle_streaming_diffs(fn, ["a", "b", "c"], session_hash="s", run="r", final=False)
    second = demo.handle_streaming_diffs(fn, [gr.skip(), "b2", gr.skip()], session_hash="s", run="r", final=False)
    last = demo.handle_streaming_diffs(fn, [None, None, None], session_hash="s", run="r", final=True)
    assert first == ["a", "b", "c"]
    assert second[0] == [] and second[2] == [], "nothing to change, rather than 'delete the value'"
    assert second[1] == [["append", [], "2"]], "Gradio's own diff of a changed value"
    assert last == [gr.skip(), "b2", gr.skip()], "the run's last message still leaves unchanged outputs alone"


def test_config_and_api_info_are_answered_from_memory_per_address_and_match_gradios_own():
    import gradio as gr
    from fastapi.testclient import TestClient

    from playground.ui.gradio_fixes import cache_page_answers

    with gr.Blocks() as demo:
        gr.Textbox(label="words")
    app, _, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        plain = {path: TestClient(app).get(path).json() for path in ("/config", "/gradio_api/info")}
        page = TestClient(app).get("/").text
        cached = cache_page_answers(app)
        client = TestClient(app)
        first = client.get("/config").json()
        assert first == plain["/config"] and client.get("/gradio_api/info").json() == plain["/gradio_api/info"]
        assert client.get("/").text == page, "the page itself (it embeds both)"
        assert len(cached.kept) == 3, "the three answers were kept"
        assert client.get("/config").json() == first and len(cached.kept) == 3, "the second came from memory"
        other = TestClient(app, base_url="http://elsewhere.test").get("/config").json()
        assert other["root"] != first["root"] and "elsewhere.test" in other["root"], "another address, its own root"
        assert len(cached.kept) == 4
    finally:
        demo.close()


def test_frontend_files_are_kept_compressed_as_gradio_sent_them_and_replayed_without_reaching_gradio():
    import gzip
    import re

    import brotli
    from fastapi.testclient import TestClient
    from gradio.routes import BUILD_PATH_LIB

    from playground.ui.gradio_fixes import keep_frontend_files

    with gr.Blocks() as demo:
        gr.Textbox(label="words")
    app, _, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = TestClient(app)
        asset = re.findall(r"/?(assets/[\w.-]+\.js)", client.get("/").text)[0]
        on_disk = (Path(BUILD_PATH_LIB) / asset.removeprefix("assets/")).read_bytes()
        br, gz = {"accept-encoding": "gzip, br"}, {"accept-encoding": "gzip"}
        before = client.get(f"/{asset}", headers=br)
        kept = keep_frontend_files(app)
        reached = []
        inner = kept.app

        async def counting(scope, receive, send):
            reached.append(scope["path"])
            await inner(scope, receive, send)

        kept.app = counting
        answers = [client.get(f"/{asset}", headers=br) for _ in range(2)]
        assert reached == [f"/{asset}"], "the second answer came from memory"
        for answer in answers:
            assert answer.status_code == 200 and answer.headers["content-encoding"] == "br"
            assert answer.headers["content-type"] == before.headers["content-type"]
            assert answer.content == before.content == on_disk, "the same file, decompressed (httpx reads br)"
        raw = [m for m in kept.kept[(f"/{asset}", "br")] if m["type"] == "http.response.body"][0]["body"]
        assert brotli.decompress(raw) == on_disk, "kept compressed, as it left the server"
        zipped = client.get(f"/{asset}", headers=gz)
        assert zipped.headers["content-encoding"] == "gzip" and zipped.content == on_disk
        raw = [m for m in kept.kept[(f"/{asset}", "gzip")] if m["type"] == "http.response.body"][0]["body"]
        assert gzip.decompress(raw) == on_disk, "each encoding its own answer"
        conditional = client.get(f"/{asset}", headers={**br, "if-none-match": before.headers["etag"]})
        assert conditional.content == on_disk and reached.count(f"/{asset}") == 3, "a condition goes to Gradio"
        assert client.get("/assets/no-such-file.js", headers=br).status_code == 404
        assert client.get("/assets/no-such-file.js", headers=br).status_code == 404
        assert len(kept.kept) == 2 and reached.count("/assets/no-such-file.js") == 2, "a miss is never kept"
        assert client.get("/config").json()["components"], "everything else as before"
    finally:
        demo.close()


def test_a_panels_updates_go_out_as_gradio_would_send_them_without_building_a_component(tmp_path, monkeypatch):
    from playground.ui import gradio_fixes
    from tests.conftest import png_bytes

    apply_gradio_fixes()
    picture = tmp_path / "result.png"
    picture.write_bytes(png_bytes())
    with gr.Blocks() as demo:
        image = gr.Image(type="filepath", visible=False)
        slider = gr.ImageSlider(type="filepath", visible=False)
        download = gr.DownloadButton("Download original", visible=False)
        use = gr.Button("Use as input", visible=False)
        status = gr.Markdown()
    outputs = [image, slider, download, use, status]
    updates = [  # as panels.render_panel sends them: running, then done, then a failed job
        [
            gr.update(value=None, visible=True),
            gr.update(value=None, visible=True),
            gr.update(value=None, visible=False),
            gr.update(visible=False),
            "running",
        ],
        [
            gr.update(value=str(picture), visible=True),
            gr.update(value=(str(picture), str(picture)), visible=True),
            gr.update(value=str(picture), label="Download original (PNG, 1 KB)", visible=True),
            gr.update(visible=True),
            "done",
        ],
        [
            gr.update(value=None, visible=False),
            gr.update(value=None, visible=False),
            gr.update(value=None, visible=False),
            gr.update(visible=False),
            "failed",
        ],
    ]
    fn = type("Fn", (), {"outputs": outputs, "batch": False, "is_validator_function": False, "postprocess": True})()
    built = []
    for cls in (gr.Image, gr.ImageSlider, gr.DownloadButton, gr.Button):
        original = cls.__init__

        def counting(self, *args, _original=original, **kwargs):
            built.append(type(self).__name__)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    sent = []
    for frame in updates:
        ours = postprocess(demo, outputs, [dict(v) if isinstance(v, dict) else v for v in frame], SessionState(demo))
        assert built == [], "no component was built for the updates"
        gradios = asyncio.run(gradio_fixes._original_postprocess(demo, fn, list(frame), SessionState(demo)))
        assert ours == gradios, "the same update Gradio's own path sends"
        built.clear()
        sent.append(ours)
    done = sent[1]
    assert done[0]["value"]["path"].endswith(".png") and done[2]["label"] == "Download original (PNG, 1 KB)"
    assert sent[2][2] == {"visible": False, "value": None, "__type__": "update"}


def test_plain_data_conversions_run_in_place_and_image_work_still_goes_to_a_thread(tmp_path, monkeypatch):
    import functools
    import threading

    from tests.conftest import png_bytes

    apply_gradio_fixes()
    seen: dict[str, int] = {}

    def watch(component, name):
        original = getattr(component, name)

        @functools.wraps(original)  # keeps the name Gradio's callers and fix 7 see
        def watched(self, value):
            seen[f"{component.__name__} {name}"] = threading.get_ident()
            return original(self, value)

        monkeypatch.setattr(component, name, watched)

    watch(gr.Textbox, "preprocess")
    watch(gr.HTML, "postprocess")
    watch(gr.Image, "postprocess")
    with gr.Blocks() as demo:
        box, page, picture, button = gr.Textbox(), gr.HTML(), gr.Image(type="filepath"), gr.Button()
        button.click(lambda text: (text, None), [box], [page, picture])
    fn = next(iter(demo.fns.values()))
    png = tmp_path / "one.png"
    png.write_bytes(png_bytes((4, 4)))

    async def convert():
        state = SessionState(demo)
        inputs = await demo.preprocess_data(fn, ["hello"], state)
        outputs = await demo.postprocess_data(fn, ["<b>hi</b>", str(png)], state)
        return threading.get_ident(), inputs, outputs

    loop_thread, inputs, outputs = asyncio.run(convert())
    assert inputs == ["hello"] and outputs[0] == "<b>hi</b>", "the same values Gradio gives"
    assert outputs[1]["path"].endswith(".png"), "the image went through Gradio's own conversion and cache"
    assert seen["Textbox preprocess"] == seen["HTML postprocess"] == loop_thread, "no thread hand-off for plain data"
    assert seen["Image postprocess"] != loop_thread, "image work stays off the event loop"


def test_without_matplotlib_an_event_does_not_search_the_import_path_for_it(monkeypatch):
    import builtins
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:
        pytest.fail("this playground does not install matplotlib; the test expects it absent")
    apply_gradio_fixes()
    from gradio import utils

    asked = []
    original_import = builtins.__import__

    def watching(name, *args, **kwargs):
        asked.append(name)
        return original_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", watching)
    with utils.MatplotlibBackendMananger():
        pass
    assert "matplotlib" not in asked
