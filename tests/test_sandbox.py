"""The sandbox itself: configuration of faults, persistence across a restart, drawn images."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from playground.sandbox.core import SandboxState
from playground.sandbox.draw import render, size_for
from tests.conftest import png_bytes


def test_faults_are_configured_from_a_compact_spec():
    state = SandboxState()
    state.configure("runapi:create=500,kie:job=moderate,apixo:status=429*2")
    assert state.take_fault("runapi", "create") == "500" and state.take_fault("runapi", "create") is None
    assert [state.take_fault("apixo", "status") for _ in range(3)] == ["429", "429", None]
    assert state.new_job("kie", "flux-kontext-pro", "fox", {}).outcome == "moderate"
    with pytest.raises(ValueError, match="provider:stage=fault"):
        state.configure("nonsense")


def test_prompt_tokens_choose_the_outcome():
    state = SandboxState()
    assert state.new_job("kie", "m", "a fox sandbox:never", {}).outcome == "never"
    assert state.new_job("kie", "m", "a fox", {}).outcome == "success"


def test_jobs_requests_and_files_survive_a_restart(tmp_path):
    first = SandboxState.load(tmp_path, job_seconds=5)
    job = first.new_job("kie", "flux-kontext-pro", "fox", {"prompt": "fox"}, aspect_ratio="1:1")
    first.record("kie", "POST", "/x", "create")
    file_id = first.add_file(b"abc", "image/png")
    second = SandboxState.load(tmp_path, job_seconds=5)
    assert second.jobs[job.id].created_at == job.created_at and second.jobs[job.id].aspect_ratio == "1:1"
    assert second.count("kie", "create") == 1
    assert second.files[file_id] == (b"abc", "image/png")


@pytest.mark.parametrize(
    ("ratio", "size"), [("16:9", (768, 432)), ("9:16", (432, 768)), ("1:1", (768, 768)), ("21:9", (768, 329))]
)
def test_images_are_drawn_at_the_requested_ratio(ratio, size):
    assert size_for(ratio, None) == size
    with Image.open(io.BytesIO(render("KIE AI", "flux-kontext-pro", "fox", ratio, "png", None))) as img:
        assert img.size == size and img.format == "PNG"


def test_an_edit_keeps_the_input_ratio_and_visibly_changes_it():
    source = png_bytes((200, 100), (10, 200, 10))
    with Image.open(io.BytesIO(render("X", "m", "make it warm", None, "jpeg", source))) as img:
        assert img.format == "JPEG" and img.width == 2 * img.height
        middle = img.convert("RGB").getpixel((img.width // 2, img.height - 5))
    assert middle != (10, 200, 10)


def test_stopping_a_server_lets_the_answer_in_flight_finish_then_refuses_new_connections():
    import threading

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from playground.sandbox.server import LoopbackServer

    entered, release = threading.Event(), threading.Event()

    async def slow(request):
        entered.set()
        while not release.is_set():  # the answer is still being made when stop() is called
            await asyncio.sleep(0.005)
        return PlainTextResponse("all of it")

    server = LoopbackServer(Starlette(routes=[Route("/slow", slow)])).start()
    answers = []
    with httpx.Client() as client:
        caller = threading.Thread(target=lambda: answers.append(client.get(f"{server.url}/slow", timeout=10).text))
        caller.start()
        assert entered.wait(10)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(0.2)
        assert stopper.is_alive(), "stop() waits for the answer being made"
        release.set()
        stopper.join(10)
        caller.join(10)
    assert not stopper.is_alive() and answers == ["all of it"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/slow", timeout=2)
