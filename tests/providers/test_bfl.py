"""Contract tests: the official BFL adapter against the BFL sandbox over loopback HTTP, plus pure tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from PIL import Image
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from playground.errors import AuthenticationError, ValidationError, WebhookError
from playground.http import HttpClient
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage, JobEvent, JobRef, JobResult
from playground.providers.base import ProviderConfig
from playground.providers.bfl import SPEC, BflProvider, bfl_signature, to_payload, to_status
from playground.sandbox import bfl as bfl_sandbox
from playground.sandbox.server import SandboxServer
from playground.service import GenerationService
from tests.conftest import collect, final, png_bytes

SECRET = "whsec-for-tests"
NOW = 1_750_000_000.0


def status_paths(sandbox: SandboxServer) -> list[str]:
    return [r.path for r in sandbox.state.requests if r.provider == "bfl" and r.stage == "status"]


def provider_with_secret(secret: str | None = SECRET) -> BflProvider:
    secrets = {"BFL_WEBHOOK_SECRET": SecretStr(secret)} if secret else {}
    config = ProviderConfig(
        "bfl", "Black Forest Labs", "http://bfl.invalid", SecretStr("k"), "BFL_API_KEY", secrets=secrets
    )
    return BflProvider(SPEC, config, None)  # type: ignore[arg-type]  # parse_callback sends nothing


def signed(payload: dict[str, object], secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {"x-bfl-signature": bfl_signature(body, secret)}, body


def succeeded(done: JobEvent) -> JobResult:
    assert done.state == "succeeded" and done.result is not None, done.error
    return done.result


def failure(done: JobEvent) -> str:
    assert done.state == "failed" and done.error is not None
    return done.error


async def one(service: GenerationService, prompt: str, model: str = "flux-kontext-pro") -> JobEvent:
    return final(await collect(service, GenerationRequest(prompt=prompt), [("bfl", model)]), "bfl", model)


# --- over loopback HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["flux-kontext-pro", "flux-kontext-max"])
async def test_text_to_image_sends_the_exact_body_to_the_model_path_and_keeps_the_ratio(service, sandbox, model):
    request = GenerationRequest(prompt="a red fox", aspect_ratio="16:9", seed=7, output_format="png")
    result = succeeded(final(await collect(service, request, [("bfl", model)]), "bfl", model))
    with Image.open(result.path) as img:
        assert img.format == "PNG"
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
    sent = result.sent
    assert sent.url == f"{sandbox.url}/bfl/v1/{model}"
    assert sent.body == {
        "prompt": "a red fox",
        "seed": 7,
        "aspect_ratio": "16:9",
        "output_format": "png",
        "prompt_upsampling": False,
    }
    assert sent.headers["x-key"] == "$BFL_API_KEY"
    assert "Authorization" not in sent.headers
    assert result.cost_usd == {"flux-kontext-pro": 0.04, "flux-kontext-max": 0.08}[model]


async def test_status_is_read_from_the_polling_url_bfl_returned(service, sandbox):
    done = await one(service, "a red fox")
    succeeded(done)
    assert done.urls["polling_url"] == f"{sandbox.url}/bfl/us1/v1/get_result?id={done.task_id}"
    paths = status_paths(sandbox)
    assert paths and set(paths) == {"/bfl/us1/v1/get_result"}


async def test_resuming_by_id_alone_falls_back_to_get_result(service, sandbox):
    submission = await service.provider("bfl").submit(GenerationRequest(prompt="a red fox"))
    job = JobRef(provider="bfl", model="flux-kontext-pro", task_id=submission.job.task_id)
    succeeded([event async for event in service.resume(job)][-1])
    assert set(status_paths(sandbox)) == {"/bfl/v1/get_result"}


async def test_edit_with_a_url_passes_the_url_through(service, sandbox):
    url = f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes(), 'image/png')}"
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=url))
    result = succeeded(final(await collect(service, request, [("bfl", "flux-kontext-max")]), "bfl", "flux-kontext-max"))
    assert result.sent.body is not None and result.sent.body["input_image"] == url


async def test_edit_with_a_local_file_sends_raw_base64_without_a_data_prefix(service, sandbox):
    content = png_bytes((80, 40))
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(content, "cat.png"))
    result = succeeded(final(await collect(service, request, [("bfl", "flux-kontext-pro")]), "bfl"))
    assert result.sent.body is not None
    sent = result.sent.body["input_image"]
    assert not sent.startswith("data:")
    assert base64.b64decode(sent, validate=True) == content
    with Image.open(result.path) as img:  # no aspect_ratio: the input's 2:1 is kept
        assert img.width / img.height == pytest.approx(2, rel=0.01)


async def test_wrong_key_is_an_authentication_error_naming_the_variable_not_the_key(service, sandbox):
    sandbox.state.keys["bfl"] = "the-right-key"
    done = await one(service, "x")
    error = failure(done)
    assert done.kind == AuthenticationError.default_code
    assert "BFL_API_KEY" in error and "Invalid Authentication" in error
    assert "the-right-key" not in error and "test-key" not in error


async def test_moderated_job_surfaces_the_moderation_reasons(service, sandbox):
    done = await one(service, "a fox sandbox:moderate")
    assert "Derivative Works Filter" in failure(done)
    assert done.kind == "moderated" and done.code == "content_moderated"


async def test_failed_job_surfaces_the_error_details(service, sandbox):
    done = await one(service, "a fox sandbox:fail")
    assert bfl_sandbox.FAILURE_DETAIL in failure(done)
    assert done.kind == "job_failed" and done.code == "error"


async def test_rate_limit_on_status_is_waited_out(service, sandbox):
    sandbox.state.inject("bfl", "status", "429", times=2)
    succeeded(await one(service, "a red fox"))
    assert sandbox.state.count("bfl", "status") >= 3


async def test_does_not_retry_create_on_500(service, sandbox):
    sandbox.state.inject("bfl", "create", "500")
    done = await one(service, "a red fox")
    failure(done)
    assert done.kind == "unavailable"
    assert sandbox.state.count("bfl", "create") == 1
    assert sandbox.state.count("bfl", "status") == 0


async def test_webhook_is_requested_only_with_a_secret_and_its_delivery_verifies(service, sandbox):
    with Receiver() as receiver:
        request = GenerationRequest(prompt="a red fox")
        submission = await service.provider("bfl").submit(request, callback_url=receiver.url)
        headers, body = await receiver.delivery()
    sent = submission.sent.body
    assert sent is not None
    assert sent["webhook_url"] == receiver.url and sent["webhook_secret"] == "$BFL_WEBHOOK_SECRET"
    assert submission.job.urls == {}  # AsyncWebhookResponse carries no polling_url
    update = service.provider("bfl").parse_callback(headers, body, now=time.time())
    assert update.task_id == submission.job.task_id
    assert update.status is not None and update.status.state == "succeeded" and update.status.image_urls


async def test_without_a_secret_no_webhook_is_requested_and_polling_covers_it(settings, sandbox):
    secrets = {k: v for k, v in settings.secrets.items() if k != "BFL_WEBHOOK_SECRET"}
    service = GenerationService(settings.model_copy(update={"secrets": secrets}))
    try:
        submission = await service.provider("bfl").submit(
            GenerationRequest(prompt="x"), callback_url="http://127.0.0.1:9/h"
        )
    finally:
        await service.aclose()
    assert submission.sent.body is not None
    assert "webhook_url" not in submission.sent.body and "webhook_secret" not in submission.sent.body
    assert "polling_url" in submission.job.urls


# --- the sandbox refuses what the real API refuses -------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"prompt": "x", "aspectRatio": "16:9"}, ["body", "aspectRatio"], "extra_forbidden"),
        ({"aspect_ratio": "16:9"}, ["body", "prompt"], "missing"),
        ({"prompt": "x", "safety_tolerance": "2"}, ["body", "safety_tolerance"], "int_type"),
        ({"prompt": "x", "safety_tolerance": 7}, ["body", "safety_tolerance"], "less_than_equal"),
        ({"prompt": "x", "aspect_ratio": "3:1"}, ["body", "aspect_ratio"], "value_error"),
        ({"prompt": "x", "prompt_upsampling": "false"}, ["body", "prompt_upsampling"], "bool_type"),
        (
            {"prompt": "x", "input_image": "data:image/png;base64," + base64.b64encode(png_bytes()).decode()},
            ["body", "input_image"],
            "value_error",
        ),
    ],
)
def test_sandbox_refuses_bodies_the_api_would_refuse(body, loc, kind):
    problems = bfl_sandbox.validate(body)
    assert problems and problems[0]["loc"] == loc and problems[0]["type"] == kind


def test_sandbox_accepts_the_adapters_body_and_any_ratio_within_21_9_and_9_21():
    assert bfl_sandbox.validate({"prompt": "x", "aspect_ratio": "7:3", "seed": 1, "safety_tolerance": 6}) is None


def test_sandbox_answers_unknown_model_missing_key_and_bad_body_in_fastapi_shapes(sandbox):
    with httpx.Client(base_url=f"{sandbox.url}/bfl") as client:
        unknown = client.post("/v1/flux-kontext-ultra", json={"prompt": "x"}, headers={"x-key": "k"})
        no_key = client.post("/v1/flux-kontext-pro", json={"prompt": "x"})
        bearer = client.post("/v1/flux-kontext-pro", json={"prompt": "x"}, headers={"Authorization": "Bearer k"})
        bad = client.post("/v1/flux-kontext-pro", json={"prompt": ""}, headers={"x-key": "k"})
        lost = client.get("/v1/get_result", params={"id": "nope"}, headers={"x-key": "k"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})
    assert no_key.status_code == 403 and bearer.status_code == 403
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "prompt"]
    assert lost.status_code == 200 and lost.json()["status"] == "Task not found"


def test_a_422_detail_list_becomes_a_validation_error_naming_the_field():
    body = {"detail": bfl_sandbox.validate({"prompt": "x", "aspectRatio": "1:1"})}
    http = HttpClient(httpx.AsyncClient(), provider="bfl", label="Black Forest Labs", key_env="BFL_API_KEY")
    error = http.error_from_response(httpx.Response(422, json=body))
    assert isinstance(error, ValidationError) and "aspectRatio" in str(error)


# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "state", "moderated"),
    [
        ({"status": "Pending"}, "running", False),
        ({"status": "Reasoning"}, "running", False),
        ({"status": "Generating", "progress": 0.5}, "running", False),
        ({"status": "Something New"}, "running", False),
        ({"status": "Ready", "result": {"sample": "https://x/y.jpg"}}, "succeeded", False),
        ({"status": "Request Moderated", "details": {"Moderation Reasons": ["Violence"]}}, "failed", True),
        ({"status": "Content Moderated"}, "failed", True),
        ({"status": "Task not found"}, "failed", False),
        ({"status": "Error", "details": {"error": "boom"}}, "failed", False),
        ({"status": "Error", "error": "content_policy_violation", "message": "bad prompt"}, "failed", True),
    ],
)
def test_status_vocabulary_maps_to_states(body, state, moderated):
    status = to_status(body)
    assert (status.state, status.moderated) == (state, moderated)


def test_ready_gives_the_sample_url_and_failures_give_a_reason():
    assert to_status({"status": "Ready", "result": {"sample": "https://x/y.jpg"}}).image_urls == ("https://x/y.jpg",)
    assert to_status({"status": "Request Moderated", "details": {"Moderation Reasons": ["Violence"]}}).error == (
        "flagged for Violence"
    )
    assert to_status({"status": "Error", "details": "out of memory"}).error == "out of memory"
    assert to_status({"status": "Error", "error": "Error description"}).error_code == "error"


def test_payload_sends_only_what_was_set_with_documented_names_and_types():
    request = GenerationRequest(prompt="p", safety_tolerance=0, prompt_upsampling=True, seed=0)
    assert to_payload(request, "https://x/in.png", "https://me/hook", "s") == {
        "prompt": "p",
        "input_image": "https://x/in.png",
        "seed": 0,
        "output_format": "jpeg",
        "prompt_upsampling": True,
        "safety_tolerance": 0,
        "webhook_url": "https://me/hook",
        "webhook_secret": "s",
    }


def test_signature_is_sha256_prefixed_hex_hmac_of_the_raw_body():
    body = b'{"id": "a"}'
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert bfl_signature(body, SECRET) == expected


def test_correctly_signed_callback_parses_with_an_iso_timestamp():
    headers, body = signed(
        {"id": "t1", "status": "Ready", "result": {"sample": "https://x/y.jpg"}, "timestamp": "2025-06-15T15:06:40Z"}
    )
    update = provider_with_secret().parse_callback(headers, body, now=NOW)
    assert update.task_id == "t1"
    assert update.status is not None and update.status.image_urls == ("https://x/y.jpg",)


def test_callback_with_a_unix_timestamp_and_an_error_parses_as_failed():
    headers, body = signed(
        {"id": "t1", "status": "Error", "error": "generation_failed", "message": "it broke", "timestamp": NOW - 10}
    )
    update = provider_with_secret().parse_callback(headers, body, now=NOW)
    assert update.status is not None and update.status.state == "failed" and update.status.error == "it broke"


def test_forged_signature_is_rejected():
    headers, body = signed({"id": "t1", "status": "Ready", "timestamp": NOW}, secret="someone-else")
    with pytest.raises(WebhookError, match="signature"):
        provider_with_secret().parse_callback(headers, body, now=NOW)


def test_missing_signature_is_rejected():
    _, body = signed({"id": "t1", "status": "Ready", "timestamp": NOW})
    with pytest.raises(WebhookError):
        provider_with_secret().parse_callback({}, body, now=NOW)


def test_stale_timestamp_is_rejected_even_when_signed():
    headers, body = signed({"id": "t1", "status": "Ready", "timestamp": NOW - 301})
    with pytest.raises(WebhookError, match="300 s"):
        provider_with_secret().parse_callback(headers, body, now=NOW)


def test_without_a_secret_a_callback_only_names_the_task():
    update = provider_with_secret(None).parse_callback({}, b'{"id": "t1", "status": "Ready"}', now=NOW)
    assert update.task_id == "t1" and update.status is None


# --- a callback receiver on a loopback port --------------------------------------------------


class Receiver:
    """A one-route HTTP server that keeps the deliveries it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    async def _hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response("ok")

    async def delivery(self, timeout_s: float = 5.0) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + timeout_s
        while not self.received and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.received, "no callback arrived"
        return self.received[0]

    def __enter__(self) -> Receiver:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


def test_a_status_bfl_does_not_document_is_marked_unknown():
    status = to_status({"id": "t", "status": "Finalizing"})
    assert status.state == "running" and status.unknown == "Finalizing"


@pytest.mark.parametrize(
    "word", ["Pending", "Reasoning", "Generating", "Ready", "Error", "Request Moderated", "Content Moderated"]
)
def test_bfls_documented_statuses_are_known(word):
    assert to_status({"id": "t", "status": word, "result": {"sample": "https://x"}}).unknown is None
