"""Contract tests: the Replicate adapter against the sandbox over loopback HTTP, plus pure unit tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any, NamedTuple

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from playground.errors import AuthenticationError, UnsupportedParameterError, WebhookError
from playground.http import HttpClient
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage, JobEvent, JobRef, JobResult
from playground.providers.base import ProviderConfig
from playground.providers.replicate import SPEC, WEBHOOK_SECRET_ENV, ReplicateProvider, to_payload, to_status
from playground.sandbox import replicate as replicate_sandbox
from tests.conftest import TEST_KEY, collect, final, png_bytes

NAME = "replicate"
PRO_PATH = "/v1/models/black-forest-labs/flux-kontext-pro/predictions"
SECRET = "whsec_" + base64.b64encode(b"a test signing key of 32 bytes!!").decode()
NOW = 1_760_000_000.0


class FailedEvent(NamedTuple):
    kind: str | None
    code: str | None
    error: str


async def test_text_to_image_succeeds_with_an_image_of_the_requested_ratio(service, sandbox):
    request = GenerationRequest(prompt="a red fox", aspect_ratio="16:9")
    done, result = _succeeded(await collect(service, request, [(NAME, "flux-kontext-pro")]))
    with Image.open(result.path) as img:
        assert img.format == "JPEG"
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
    sent = result.sent
    assert sent.url == f"{sandbox.url}/{NAME}{PRO_PATH}"
    assert sent.body == {
        "input": {"prompt": "a red fox", "aspect_ratio": "16:9", "output_format": "jpg", "prompt_upsampling": False},
    }
    assert sent.headers["Authorization"] == "Bearer $REPLICATE_API_TOKEN"
    assert done.urls["get"].startswith(f"{sandbox.url}/{NAME}/v1/predictions/")


async def test_max_model_with_png_seed_and_safety_uses_the_max_path_and_replicate_names(service, sandbox):
    request = GenerationRequest(prompt="a fox", output_format="png", seed=7, safety_tolerance=5, prompt_upsampling=True)
    _, result = _succeeded(await collect(service, request, [(NAME, "flux-kontext-max")]), "flux-kontext-max")
    assert result.sent.url.endswith("/v1/models/black-forest-labs/flux-kontext-max/predictions")
    assert _input(result) == {
        "prompt": "a fox",
        "output_format": "png",
        "safety_tolerance": 5,
        "prompt_upsampling": True,
        "seed": 7,
    }
    assert result.mime_type == "image/png"


async def test_edit_with_a_url_passes_it_as_input_image_and_keeps_the_input_ratio(service, sandbox):
    source = sandbox.state.add_file(png_bytes((64, 48)), "image/png")
    url = f"{sandbox.url}/files/{source}"
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=url))
    _, result = _succeeded(await collect(service, request, [(NAME, "flux-kontext-pro")]))
    assert _input(result)["input_image"] == url
    assert "aspect_ratio" not in _input(result)  # Replicate's default: match_input_image
    assert result.width / result.height == pytest.approx(64 / 48, rel=0.01)


async def test_edit_with_a_local_file_sends_it_inline_as_a_data_uri(service, sandbox):
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(png_bytes((48, 64)), "cat.png"))
    _, result = _succeeded(await collect(service, request, [(NAME, "flux-kontext-pro")]))
    assert _input(result)["input_image"].startswith("data:image/png;base64,")
    assert sandbox.state.count(NAME, "create") == 1
    assert result.width / result.height == pytest.approx(48 / 64, rel=0.01)  # the sandbox read the data URI


@pytest.mark.parametrize(
    ("request_kw", "needle"),
    [
        ({"aspect_ratio": "16:10"}, "aspect ratio"),
        ({"safety_tolerance": 4, "image": InputImage(url="https://example.com/a.png")}, "safety tolerance 0 to 2"),
    ],
)
async def test_values_replicate_cannot_take_are_refused_before_anything_is_sent(service, sandbox, request_kw, needle):
    with pytest.raises(UnsupportedParameterError, match=needle):
        service.plan(GenerationRequest(prompt="x", **request_kw), [(NAME, "flux-kontext-pro")]).raise_first()
    assert sandbox.state.count() == 0


async def test_wrong_key_is_an_authentication_error_naming_the_variable_not_the_key(service, sandbox):
    sandbox.state.keys[NAME] = "the-right-key"
    events = await collect(service, GenerationRequest(prompt="x"), [(NAME, "flux-kontext-pro")])
    done = _failed(events)
    assert done.kind == AuthenticationError.default_code
    assert "REPLICATE_API_TOKEN" in done.error
    assert "the-right-key" not in done.error and TEST_KEY not in done.error
    assert "valid authentication token" in done.error  # the problem's detail reaches the user


async def test_moderated_prediction_surfaces_replicates_reason_and_code(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="a fox sandbox:moderate"), [(NAME, "flux-kontext-pro")])
    done = _failed(events)
    assert done.kind == "moderated" and done.code == "E005"
    assert "flagged as sensitive" in done.error


async def test_failed_prediction_surfaces_replicates_error(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="a fox sandbox:fail"), [(NAME, "flux-kontext-pro")])
    done = _failed(events)
    assert done.kind == "job_failed" and done.code == "E6716"
    assert "unexpected error handling prediction" in done.error


async def test_a_429_on_status_is_waited_out_and_the_job_still_succeeds(service, sandbox):
    sandbox.state.inject(NAME, "status", "429")
    events = await collect(service, GenerationRequest(prompt="a fox"), [(NAME, "flux-kontext-pro")])
    assert final(events, NAME).state == "succeeded"
    assert sandbox.state.count(NAME, "status") >= 2


async def test_does_not_retry_create_on_500(service, sandbox):
    sandbox.state.inject(NAME, "create", "500")
    events = await collect(service, GenerationRequest(prompt="a fox"), [(NAME, "flux-kontext-pro")])
    done = _failed(events)
    assert done.kind == "unavailable"
    assert sandbox.state.count(NAME, "create") == 1
    assert sandbox.state.count(NAME, "status") == 0


async def test_resuming_by_id_alone_polls_the_documented_prediction_path(service, sandbox):
    submission = await service.provider(NAME).submit(GenerationRequest(prompt="a fox"))
    job = JobRef(provider=NAME, model="flux-kontext-pro", task_id=submission.job.task_id)
    events = [e async for e in service.resume(job)]
    assert events[-1].state == "succeeded", events[-1].error
    assert sandbox.state.requests[-1].path == f"/{NAME}/v1/predictions/{job.task_id}"


def test_polls_urls_get_only_when_it_lives_under_the_configured_base_url():
    adapter = _adapter(None)
    mine = JobRef(
        provider=NAME, model="flux-kontext-pro", task_id="p1", urls={"get": "https://api.test/v1/predictions/p1"}
    )
    foreign = JobRef(
        provider=NAME, model="flux-kontext-pro", task_id="p1", urls={"get": "https://evil.test/v1/predictions/p1"}
    )
    assert adapter.poll_url(mine) == "https://api.test/v1/predictions/p1"
    assert adapter.poll_url(foreign) == "https://api.test/v1/predictions/p1"  # built from the base, key stays home
    assert adapter.poll_url(mine.model_copy(update={"urls": {}})) == "https://api.test/v1/predictions/p1"


async def test_signed_webhook_from_the_sandbox_is_verified_by_the_adapter(service, sandbox):
    received: asyncio.Future[tuple[dict[str, str], bytes]] = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: _receive(r, w, received), "127.0.0.1", 0)
    hook = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/replicate"
    try:
        provider = service.provider(NAME)
        submission = await provider.submit(GenerationRequest(prompt="a fox"), callback_url=hook)
        headers, body = await asyncio.wait_for(received, timeout=5)
    finally:
        server.close()
    assert submission.sent.body["webhook"] == hook
    assert submission.sent.body["webhook_events_filter"] == ["completed"]
    update = provider.parse_callback(headers, body, now=time.time())
    assert update.task_id == submission.job.task_id
    assert update.delivery_id == headers["webhook-id"]
    assert update.status is not None and update.status.state == "succeeded" and update.status.image_urls


def test_a_correctly_signed_delivery_parses_into_a_status():
    body = json.dumps({"id": "p1", "status": "succeeded", "output": "https://replicate.delivery/x/out.jpg"}).encode()
    update = _adapter(SECRET).parse_callback(_signed(body), body, now=NOW + 10)
    assert update.task_id == "p1" and update.delivery_id == "msg_1"
    assert update.status is not None and update.status.image_urls == ("https://replicate.delivery/x/out.jpg",)


def test_any_one_matching_signature_in_the_list_is_enough():
    body = b'{"id": "p1", "status": "processing"}'
    headers = _signed(body)
    headers["webhook-signature"] = "v1,Zm9yZ2Vk v1a,abc " + headers["webhook-signature"]
    status = _adapter(SECRET).parse_callback(headers, body, now=NOW).status
    assert status is not None and status.state == "running"


@pytest.mark.parametrize(
    ("change", "now"),
    [
        ({"webhook-signature": "v1," + base64.b64encode(b"f" * 32).decode()}, NOW),
        ({}, NOW + 301),
        ({}, NOW - 301),
        ({"webhook-id": "msg_2"}, NOW),
        ({"webhook-timestamp": ""}, NOW),
    ],
    ids=["forged", "stale", "from-the-future", "other-id", "no-timestamp"],
)
def test_forged_or_stale_deliveries_raise_webhook_error(change, now):
    body = b'{"id": "p1", "status": "succeeded", "output": "https://x/y.jpg"}'
    with pytest.raises(WebhookError):
        _adapter(SECRET).parse_callback({**_signed(body), **change}, body, now=now)


def test_a_tampered_body_raises_webhook_error():
    body = b'{"id": "p1", "status": "failed"}'
    with pytest.raises(WebhookError, match="does not match"):
        _adapter(SECRET).parse_callback(_signed(body), body.replace(b"failed", b"succeeded"), now=NOW)


def test_without_a_secret_a_delivery_is_only_a_hint_to_check_the_status():
    update = _adapter(None).parse_callback({"webhook-id": "msg_9"}, b'{"id": "p1", "status": "succeeded"}', now=NOW)
    assert update.task_id == "p1" and update.status is None and update.delivery_id == "msg_9"


@pytest.mark.parametrize(
    ("prediction", "state"),
    [
        ({"status": "starting"}, "queued"),
        ({"status": "processing"}, "running"),
        ({"status": "succeeded", "output": "https://x/y.jpg"}, "succeeded"),
        ({"status": "failed", "error": "boom"}, "failed"),
        ({"status": "canceled"}, "canceled"),
        ({"status": "cancelled"}, "canceled"),
        ({"status": "booting"}, "running"),
        ({}, "running"),
    ],
)
def test_prediction_statuses_map_to_states(prediction, state):
    assert to_status(prediction).state == state


@pytest.mark.parametrize(
    ("output", "urls"),
    [
        ("https://x/a.jpg", ("https://x/a.jpg",)),
        (["https://x/a.png", "https://x/b.png"], ("https://x/a.png",)),
        (None, ()),
    ],
)
def test_output_is_read_as_a_string_or_the_first_of_a_list(output, urls):
    assert to_status({"status": "succeeded", "output": output}).image_urls == urls


@pytest.mark.parametrize(
    ("error", "moderated"),
    [
        ("The input or output was flagged as sensitive. Please try again with different inputs. (E005)", True),
        ("NSFW content detected", True),
        ("CUDA out of memory", False),
    ],
)
def test_moderation_is_read_from_the_error_text(error, moderated):
    assert to_status({"status": "failed", "error": error}).moderated is moderated


def test_webhook_fields_are_sent_only_with_a_callback_url():
    request = GenerationRequest(prompt="x")
    assert set(to_payload(request, None, None)) == {"input"}
    assert to_payload(request, None, "https://me/hook")["webhook_events_filter"] == ["completed"]


def test_capabilities_list_replicates_concrete_ratios():
    assert {"1:1", "16:9", "4:5", "5:4", "2:1", "1:2", "21:9", "9:21"} <= set(SPEC.capabilities.aspect_ratios)
    assert "match_input_image" not in SPEC.capabilities.aspect_ratios


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input": {"prompt": "x", "aspectRatio": "16:9"}}, "aspectRatio"),
        ({"input": {"prompt": "x", "inputImage": "https://x/y.png"}}, "inputImage"),
        ({"input": {"aspect_ratio": "16:9"}}, "prompt is required"),
        ({"input": {"prompt": "x", "output_format": "jpeg"}}, "output_format"),
        ({"input": {"prompt": "x", "safety_tolerance": "2"}}, "safety_tolerance"),
        ({"input": {"prompt": "x", "input_image": "https://x/y.png", "safety_tolerance": 3}}, "between 0 and 2"),
        ({"input": {"prompt": "x", "input_image": "data:image/png;base64,!!"}}, "input_image"),
        ({"prompt": "x"}, "prompt"),
        ({"input": {"prompt": "x"}, "webhook_events_filter": ["done"]}, "webhook_events_filter"),
    ],
)
def test_sandbox_refuses_what_replicate_would(body, needle):
    problem = replicate_sandbox.validate(body)
    assert problem is not None and needle in problem


async def test_sandbox_answers_problem_details_for_an_unknown_model_and_a_missing_prompt(sandbox):
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/{NAME}", headers={"Authorization": "Bearer k"}) as client:
        ultra = "/v1/models/black-forest-labs/flux-kontext-ultra/predictions"
        unknown = await client.post(ultra, json={"input": {"prompt": "x"}})
        missing = await client.post(PRO_PATH, json={"input": {}})
    assert unknown.status_code == 404 and set(unknown.json()) == {"title", "detail", "status"}
    assert missing.status_code == 422 and missing.json()["status"] == 422 and "prompt" in missing.json()["detail"]
    assert sandbox.state.jobs == {}


async def test_sandbox_holds_the_answer_for_prefer_wait_and_serves_the_signing_secret(sandbox):
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/{NAME}", headers={"Authorization": "Bearer k"}) as client:
        waited = await client.post(PRO_PATH, json={"input": {"prompt": "x"}}, headers={"Prefer": "wait=5"})
        secret = await client.get("/v1/webhooks/default/secret")
    assert waited.status_code == 201 and waited.json()["status"] == "succeeded"
    assert secret.json()["key"].startswith("whsec_")


def _succeeded(events: list[JobEvent], model: str = "flux-kontext-pro") -> tuple[JobEvent, JobResult]:
    done = final(events, NAME, model)
    assert done.state == "succeeded" and done.result is not None, done.error
    return done, done.result


def _failed(events: list[JobEvent]) -> FailedEvent:
    done = final(events, NAME)
    assert done.state == "failed" and done.error is not None
    return FailedEvent(done.kind, done.code, done.error)


def _input(result: JobResult) -> dict[str, Any]:
    assert result.sent.body is not None
    inputs: dict[str, Any] = result.sent.body["input"]
    return inputs


def _adapter(secret: str | None) -> ReplicateProvider:
    secrets = {WEBHOOK_SECRET_ENV: SecretStr(secret)} if secret else {}
    config = ProviderConfig(
        name=NAME,
        label="Replicate",
        base_url="https://api.test",
        api_key=SecretStr("k"),
        key_env=SPEC.key_env,
        secrets=secrets,
    )
    return ReplicateProvider(SPEC, config, HttpClient(httpx.AsyncClient(), provider=NAME, label="Replicate"))


def _signed(body: bytes, webhook_id: str = "msg_1", timestamp: float = NOW) -> dict[str, str]:
    """Headers as the Standard Webhooks spec builds them, computed here independently of both modules."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    content = f"{webhook_id}.{int(timestamp)}.".encode() + body
    signature = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(timestamp)), "webhook-signature": f"v1,{signature}"}


async def _receive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: asyncio.Future[tuple[dict[str, str], bytes]]
) -> None:
    """A minimal HTTP receiver: keep the first delivery's headers (lower-case) and raw body, answer 200."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await writer.drain()
    writer.close()
    if not received.done():
        received.set_result((headers, body))


def test_a_prediction_status_replicate_does_not_document_is_marked_unknown():
    status = to_status({"id": "p", "status": "booting"})
    assert status.state == "running" and status.unknown == "booting"


@pytest.mark.parametrize("word", ["starting", "processing", "succeeded", "failed", "canceled", "aborted"])
def test_replicates_prediction_statuses_are_known(word):
    assert to_status({"id": "p", "status": word, "output": "https://x"}).unknown is None
