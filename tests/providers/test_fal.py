"""Contract tests: the fal.ai queue adapter against the sandbox over loopback HTTP, plus pure parsing tests."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image

from playground.errors import AuthenticationError, WebhookError
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage, JobRef
from playground.providers import fal
from playground.providers import fal as _fal_adapter
from playground.providers.base import ProviderConfig
from playground.sandbox import fal as fal_sandbox
from tests.conftest import collect, final, png_bytes

NOW = 1_750_000_000.0
PRO_T2I = "/fal/fal-ai/flux-pro/kontext/text-to-image"
KEY_HEADERS = {"Authorization": "Key k"}
BEARER = {"Authorization": "Bearer k"}
SANDBOX_PUBLIC_KEYS = fal_sandbox.SANDBOX_SECRETS["FAL_WEBHOOK_PUBLIC_KEYS"]


async def run_one(service, request: GenerationRequest | str, model: str = "flux-kontext-pro"):
    """The final event of one fal job."""
    request = GenerationRequest(prompt=request) if isinstance(request, str) else request
    return final(await collect(service, request, [("fal", model)]), "fal", model)


def offline_provider(**extra: str) -> fal.FalProvider:
    """An adapter for the pure tests: real base URL, no HTTP client (nothing is sent)."""
    config = ProviderConfig(
        name="fal", label="fal.ai", base_url="https://queue.fal.run", api_key=None, key_env="FAL_KEY", extra=extra
    )
    return fal.FalProvider(fal.SPEC, config, http=None)  # type: ignore[arg-type]


async def test_text_to_image_succeeds_with_an_image_of_the_requested_ratio(service, sandbox):
    request = GenerationRequest(prompt="a red fox", aspect_ratio="16:9", seed=7, safety_tolerance=3, guidance=4.5)
    done = await run_one(service, request)
    assert done.state == "succeeded", done.error
    with Image.open(done.result.path) as img:
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
    assert done.result.sent.url == f"{sandbox.url}{PRO_T2I}"
    assert done.result.sent.body == {
        "prompt": "a red fox",
        "seed": 7,
        "guidance_scale": 4.5,
        "output_format": "jpeg",
        "safety_tolerance": "3",
        "enhance_prompt": False,
        "aspect_ratio": "16:9",
    }
    assert done.result.sent.headers["Authorization"] == "Key $FAL_KEY"
    assert done.result.cost_usd == 0.04


async def test_status_and_result_follow_the_urls_submit_returned_without_the_sub_path(service, sandbox):
    done = await run_one(service, "a fox", "flux-kontext-max")
    assert done.state == "succeeded", done.error
    paths = [(r.method, r.path, r.stage) for r in sandbox.state.requests]
    assert paths[0] == ("POST", "/fal/fal-ai/flux-pro/kontext/max/text-to-image", "create")
    assert ("GET", f"/fal/fal-ai/flux-pro/requests/{done.task_id}/status", "status") in paths
    assert paths[-1] == ("GET", f"/fal/fal-ai/flux-pro/requests/{done.task_id}", "result")


async def test_edit_with_a_url_sends_it_as_image_url_to_the_edit_endpoint(service, sandbox):
    url = f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes(), 'image/png')}"
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=url))
    done = await run_one(service, request, "flux-kontext-max")
    assert done.state == "succeeded", done.error
    assert done.result.sent.url == f"{sandbox.url}/fal/fal-ai/flux-pro/kontext/max"
    assert done.result.sent.body == {
        "prompt": "make it blue",
        "image_url": url,
        "output_format": "jpeg",
        "enhance_prompt": False,
    }


async def test_edit_with_a_local_file_sends_it_inline_as_a_data_uri(service, sandbox):
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(png_bytes((640, 480)), "cat.png"))
    done = await run_one(service, request)
    assert done.state == "succeeded", done.error
    assert done.result.sent.body["image_url"].startswith("data:image/png;base64,")
    job = sandbox.state.jobs[done.task_id]
    assert job.input_url.startswith(f"{sandbox.url}/files/")  # the sandbox decoded the inline image
    assert done.result.width / done.result.height == pytest.approx(4 / 3, rel=0.01)  # edit keeps the input ratio


async def test_wrong_key_is_an_authentication_error_that_names_the_variable_not_the_key(service, sandbox):
    sandbox.state.keys["fal"] = "the-right-key"
    done = await run_one(service, "x")
    assert done.state == "failed"
    assert done.kind == AuthenticationError.default_code
    assert "FAL_KEY" in done.error and "the-right-key" not in done.error and "test-key" not in done.error


async def test_flagged_output_is_a_moderated_failure(service, sandbox):
    done = await run_one(service, "a fox sandbox:moderate")
    assert done.state == "failed" and done.kind == "moderated" and done.code == "has_nsfw_concepts"
    assert "flagged" in done.error


async def test_failed_job_surfaces_the_detail_of_the_422_result(service, sandbox):
    done = await run_one(service, "a fox sandbox:fail")
    assert done.state == "failed" and done.kind == "job_failed" and done.code == "422"
    assert "downstream model failed" in done.error


async def test_a_422_result_is_a_failed_status_not_a_request_error(service, sandbox):
    provider = service.provider("fal")
    submission = await provider.submit(GenerationRequest(prompt="sandbox:fail"))
    sandbox.state.jobs[submission.job.task_id].duration_s = 0
    status = await provider.status(submission.job)
    assert status.state == "failed" and status.error_code == "422"
    assert status.error == "prompt: The downstream model failed to generate an image (sandbox:fail)"


async def test_resuming_by_id_alone_builds_the_owner_app_urls(service, sandbox):
    provider = service.provider("fal")
    submission = await provider.submit(GenerationRequest(prompt="a fox"))
    sandbox.state.jobs[submission.job.task_id].duration_s = 0
    status = await provider.status(JobRef(provider="fal", model="flux-kontext-pro", task_id=submission.job.task_id))
    assert status.state == "succeeded" and status.image_urls


def test_returned_urls_on_another_host_are_not_followed_with_the_key():
    provider = offline_provider()
    urls = {"status": "https://evil.example/r1/status"}
    job = JobRef(provider="fal", model="flux-kontext-pro", task_id="r1", urls=urls)
    assert provider._url(job, "status") == "https://queue.fal.run/fal-ai/flux-pro/requests/r1/status"
    assert provider._url(job, "response") == "https://queue.fal.run/fal-ai/flux-pro/requests/r1"


async def test_callback_url_goes_in_the_fal_webhook_query(service, sandbox):
    hook = "http://127.0.0.1:9/hook?a=1"
    submission = await service.provider("fal").submit(GenerationRequest(prompt="a fox"), callback_url=hook)
    assert submission.sent.url.endswith("/kontext/text-to-image?fal_webhook=http%3A%2F%2F127.0.0.1%3A9%2Fhook%3Fa%3D1")
    assert sandbox.state.jobs[submission.job.task_id].callback_url == hook


async def test_rate_limited_status_is_waited_out(service, sandbox):
    sandbox.state.inject("fal", "status", "429")
    done = await run_one(service, "a fox")
    assert done.state == "succeeded", done.error
    assert sandbox.state.count("fal", "status") >= 2


async def test_does_not_retry_create_on_500(service, sandbox):
    sandbox.state.inject("fal", "create", "500")
    done = await run_one(service, "a fox")
    assert done.state == "failed" and done.kind == "unavailable"
    assert sandbox.state.count("fal", "create") == 1


async def test_sandbox_answers_202_while_running_and_200_when_completed(sandbox):
    headers = KEY_HEADERS
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/fal") as client:
        submitted = (await client.post(PRO_T2I.removeprefix("/fal"), json={"prompt": "x"}, headers=headers)).json()
        running = await client.get(submitted["status_url"], headers=headers)
        early = await client.get(submitted["response_url"], headers=headers)
        sandbox.state.jobs[submitted["request_id"]].duration_s = 0
        completed = await client.get(submitted["status_url"], headers=headers)
    assert submitted["status"] == "IN_QUEUE"
    assert submitted["status_url"].endswith(f"/fal-ai/flux-pro/requests/{submitted['request_id']}/status")
    assert running.status_code == 202 and running.json()["status"] in {"IN_QUEUE", "IN_PROGRESS"}
    assert early.status_code == 400
    assert completed.status_code == 200 and completed.json()["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("body", "edit", "where"),
    [
        ({"prompt": "x", "aspectRatio": "16:9"}, False, "aspectRatio"),
        ({"prompt": "x", "safety_tolerance": 2}, False, "safety_tolerance"),
        ({"aspect_ratio": "16:9"}, False, "prompt"),
        ({"prompt": "x"}, True, "image_url"),
        ({"prompt": "x", "image_url": "https://a/b.png"}, False, "image_url"),
        ({"prompt": "x", "guidance_scale": 21}, False, "guidance_scale"),
        ({"prompt": "x", "aspect_ratio": "5:4"}, False, "aspect_ratio"),
        ({"prompt": "x", "output_format": "webp"}, False, "output_format"),
    ],
)
def test_sandbox_refuses_what_fal_would_refuse(body, edit, where):
    problems = fal_sandbox.validate(body, edit=edit)
    assert [p["loc"] for p in problems] == [["body", where]]


async def test_sandbox_answers_an_unknown_endpoint_with_404_and_a_bad_body_with_422_detail(sandbox):
    headers = KEY_HEADERS
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/fal") as client:
        unknown = await client.post("/fal-ai/flux-pro/kontext/ultra", json={"prompt": "x"}, headers=headers)
        invalid = await client.post("/fal-ai/flux-pro/kontext", json={"prompt": "x"}, headers=headers)
        bearer = await client.post(PRO_T2I.removeprefix("/fal"), json={"prompt": "x"}, headers=BEARER)
    assert unknown.status_code == 404 and "detail" in unknown.json()
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "image_url"]
    assert bearer.status_code == 401
    assert not sandbox.state.jobs


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"status": "IN_QUEUE", "queue_position": 3}, "queued"),
        ({"status": "IN_PROGRESS", "logs": []}, "running"),
        ({"status": "COMPLETED", "error": "boom", "error_type": "runner_failure"}, "failed"),
        ({"status": "FAILED", "error": "boom"}, "failed"),
        ({"status": "CANCELED"}, "canceled"),
        ({"status": "WARMING_UP"}, "running"),
        ({}, "running"),
    ],
)
def test_queue_statuses_map_to_states(data, state):
    assert fal.to_status(data).state == state


def test_completed_status_reads_the_image_urls_from_the_output():
    output = {"images": [{"url": "https://v3.fal.media/a.jpg", "width": 1, "height": 1}], "has_nsfw_concepts": [False]}
    status = fal.to_status({"status": "COMPLETED"}, output)
    assert status.state == "succeeded" and status.image_urls == ("https://v3.fal.media/a.jpg",)


def test_a_flagged_image_is_dropped_and_the_rest_kept():
    images = [{"url": "https://x/1.jpg"}, {"url": "https://x/2.jpg"}]
    assert fal.output_status({"images": images, "has_nsfw_concepts": [True, False]}).image_urls == ("https://x/2.jpg",)


def test_a_content_policy_422_counts_as_moderation():
    status = fal.result_failure(422, "prompt: The content was flagged by a content checker")
    assert status.moderated and status.state == "failed"


def _delivery(body: dict, timestamp: float = NOW) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    headers = fal_sandbox.sign_delivery(raw, body["request_id"], str(int(timestamp)))
    return {k.lower(): v for k, v in headers.items()}, raw


def _provider(keys: str = SANDBOX_PUBLIC_KEYS) -> fal.FalProvider:
    return offline_provider(FAL_WEBHOOK_PUBLIC_KEYS=keys)


OK_BODY = {
    "request_id": "r1",
    "gateway_request_id": "r1",
    "status": "OK",
    "error": None,
    "payload": {"images": [{"url": "https://v3.fal.media/x.png", "content_type": "image/png"}], "seed": 1},
}


def test_a_correctly_signed_callback_parses():
    headers, raw = _delivery(OK_BODY)
    update = _provider().parse_callback(headers, raw, now=NOW + 10)
    assert update.task_id == "r1" and update.delivery_id == f"r1:{int(NOW)}"
    assert update.status.state == "succeeded" and update.status.image_urls == ("https://v3.fal.media/x.png",)


def test_a_callback_verifies_against_any_of_several_keys():
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keys = base64.urlsafe_b64encode(other).decode().rstrip("=") + "," + SANDBOX_PUBLIC_KEYS
    headers, raw = _delivery(OK_BODY)
    assert _provider(keys).parse_callback(headers, raw, now=NOW).status is not None


def test_a_forged_callback_is_rejected():
    headers, raw = _delivery(OK_BODY)
    forged = raw.replace(b"x.png", b"y.png")
    with pytest.raises(WebhookError, match="does not match"):
        _provider().parse_callback(headers, forged, now=NOW)


def test_a_stale_callback_is_rejected():
    headers, raw = _delivery(OK_BODY, timestamp=NOW - 301)
    with pytest.raises(WebhookError, match="300 s"):
        _provider().parse_callback(headers, raw, now=NOW)


def test_an_error_callback_is_a_failed_status_with_the_detail():
    body = {
        "request_id": "r2",
        "status": "ERROR",
        "error": "Invalid status code: 422",
        "payload": {"detail": [fal_sandbox.FAIL_DETAIL]},
    }
    headers, raw = _delivery(body)
    status = _provider().parse_callback(headers, raw, now=NOW).status
    assert status.state == "failed" and status.error_code == "422" and "downstream model failed" in status.error


def test_without_public_keys_a_callback_is_only_a_hint_to_check_status():
    headers, raw = _delivery(OK_BODY)
    update = _provider(keys="").parse_callback({}, raw, now=NOW)
    assert update.task_id == "r1" and update.status is None and update.delivery_id is None


def test_a_malformed_public_key_setting_is_reported_by_name():
    headers, raw = _delivery(OK_BODY)
    with pytest.raises(WebhookError, match="FAL_WEBHOOK_PUBLIC_KEYS"):
        _provider(keys="not-a-key").parse_callback(headers, raw, now=NOW)


class _Receiver(BaseHTTPRequestHandler):
    deliveries: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, raw))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A loopback webhook receiver: (its URL, the deliveries it got)."""
    deliveries: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"deliveries": deliveries})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", deliveries
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("prompt", "state"), [("a fox", "succeeded"), ("a fox sandbox:fail", "failed")])
async def test_the_sandbox_webhook_is_signed_with_the_key_it_publishes(service, sandbox, receiver, prompt, state):
    url, deliveries = receiver
    provider = service.provider("fal")
    submission = await provider.submit(GenerationRequest(prompt=prompt), callback_url=url)
    for _ in range(200):
        if deliveries:
            break
        await asyncio.sleep(0.025)
    headers, raw = deliveries[0]
    update = provider.parse_callback(headers, raw, now=time.time())
    assert update.task_id == submission.job.task_id and update.status.state == state


def test_a_queue_status_fal_does_not_document_is_marked_unknown():
    status = _fal_adapter.to_status({"status": "WARMING_UP"})
    assert status.state == "running" and status.unknown == "WARMING_UP"


@pytest.mark.parametrize("word", ["IN_QUEUE", "IN_PROGRESS", "FAILED", "CANCELED"])
def test_fals_queue_statuses_are_known(word):
    assert _fal_adapter.to_status({"status": word}).unknown is None
