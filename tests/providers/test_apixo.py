"""Contract tests: the APIXO adapter against its sandbox over loopback HTTP, plus pure wire tests."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from playground.errors import (
    AuthenticationError,
    UnsupportedParameterError,
    ValidationError,
    WebhookError,
)
from playground.http import HttpClient
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage, JobRef
from playground.providers import REGISTRY
from playground.providers.apixo import SPEC, ApixoProvider, to_payload, to_status
from playground.providers.base import PollSchedule, ProviderConfig
from playground.sandbox import apixo as apixo_sandbox
from playground.sandbox.core import RETRY_AFTER_S
from playground.service import GenerationService
from tests.conftest import TEST_KEY, collect, final, png_bytes

PRO, MAX = "flux-kontext-pro", "flux-kontext-max"
CREATE = "/apixo/api/v1/generateTask/flux-kontext"
OK_INPUT = {"mode": "pro", "prompt": "x"}
FAIL_CODES = [
    "CONTENT_VIOLATION",
    "NSFW_DETECTED",
    "PROMPT_TOO_LONG",
    "INVALID_PROMPT",
    "INVALID_IMAGE_URL",
    "IMAGE_TOO_LARGE",
    "UNSUPPORTED_FORMAT",
    "IMAGE_DOWNLOAD_FAILED",
    "PROCESSING_TIMEOUT",
    "MODEL_UNAVAILABLE",
    "GENERATION_FAILED",
    "INSUFFICIENT_CREDITS",
]


def adapter_with(handler) -> ApixoProvider:
    """The adapter at APIXO's real base URL, answered by ``handler`` instead of the network."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = ProviderConfig(
        name="apixo", label="APIXO", base_url=SPEC.default_base_url, api_key=SecretStr("k-123"), key_env="APIXO_API_KEY"
    )
    return ApixoProvider(SPEC, config, HttpClient(client, provider="apixo", label="APIXO", key_env="APIXO_API_KEY"))


# --- against the sandbox -------------------------------------------------------------------------


async def test_text_to_image_succeeds_with_the_requested_ratio_and_the_exact_wire_body(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="a red fox", aspect_ratio="16:9"), [("apixo", PRO)])
    done = final(events, "apixo")
    assert done.state == "succeeded", done.error
    with Image.open(done.result.path) as img:
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
        assert img.format == "JPEG"
    sent = done.result.sent
    assert sent.url == f"{sandbox.url}{CREATE}"
    assert sent.headers == {"Authorization": "Bearer $APIXO_API_KEY", "Content-Type": "application/json"}
    assert sent.body == {
        "request_type": "async",
        "input": {
            "mode": "pro",
            "prompt": "a red fox",
            "aspect_ratio": "16:9",
            "output_format": "jpeg",
            "promptUpsampling": False,
        },
    }
    assert done.result.cost_usd == 0.03


async def test_every_option_is_accepted_by_the_strict_sandbox_for_max(service, sandbox):
    request = GenerationRequest(
        prompt="a red fox",
        aspect_ratio="9:16",
        output_format="png",
        safety_tolerance=0,
        prompt_upsampling=True,
        enable_translation=False,
    )
    events = await collect(service, request, [("apixo", MAX)])
    done = final(events, "apixo", MAX)
    assert done.state == "succeeded", done.error
    with Image.open(done.result.path) as img:
        assert img.format == "PNG"
        assert img.width / img.height == pytest.approx(9 / 16, rel=0.01)
    assert done.result.sent.body["input"]["mode"] == "max"
    assert done.result.cost_usd == 0.06


async def test_edit_with_a_url_sends_it_as_a_one_element_image_urls_array(service, sandbox):
    source = sandbox.state.add_file(png_bytes(), "image/png")
    url = f"{sandbox.url}/files/{source}"
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=url), aspect_ratio="1:1")
    events = await collect(service, request, [("apixo", PRO)])
    done = final(events, "apixo")
    assert done.state == "succeeded", done.error
    assert done.result.sent.body["input"]["image_urls"] == [url]
    assert "image_url" not in done.result.sent.body["input"]
    assert done.result.width == done.result.height


async def test_edit_with_a_local_file_is_refused_before_anything_is_sent(service, sandbox):
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(png_bytes(), "cat.png"))
    with pytest.raises(UnsupportedParameterError, match=r"APIXO .*public URLs.*http\(s\):// URL"):
        service.plan(request, [("apixo", PRO)]).raise_first()
    with pytest.raises(UnsupportedParameterError):
        await collect(service, request, [("apixo", PRO)])
    assert sandbox.state.count() == 0


@pytest.mark.parametrize("image", [None, InputImage(url="https://example.com/a.png")])
async def test_safety_tolerance_above_2_is_refused_before_anything_is_sent(service, sandbox, image):
    request = GenerationRequest(prompt="a fox", safety_tolerance=3, image=image)
    with pytest.raises(UnsupportedParameterError, match="safety tolerance 0 to 2"):
        service.plan(request, [("apixo", PRO)]).raise_first()
    assert sandbox.state.count() == 0


async def test_wrong_key_is_an_authentication_error_naming_the_variable_not_the_key(service, sandbox):
    sandbox.state.keys["apixo"] = "the-right-key"
    events = await collect(service, GenerationRequest(prompt="x"), [("apixo", PRO)])
    done = final(events, "apixo")
    assert done.state == "failed"
    assert done.kind == AuthenticationError.default_code
    assert "APIXO_API_KEY" in done.error
    assert "the-right-key" not in done.error and TEST_KEY not in done.error


async def test_moderated_job_surfaces_the_fail_code_and_message(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="a fox sandbox:moderate"), [("apixo", PRO)])
    done = final(events, "apixo")
    assert (done.state, done.kind, done.code) == ("failed", "moderated", "CONTENT_VIOLATION")
    assert "Content violates usage policy" in done.error


async def test_failed_job_surfaces_the_fail_code_and_message(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="a fox sandbox:fail"), [("apixo", PRO)])
    done = final(events, "apixo")
    assert (done.state, done.kind, done.code) == ("failed", "job_failed", "GENERATION_FAILED")
    assert "Image generation failed" in done.error


async def test_a_job_that_just_started_reads_as_queued(service, sandbox):
    sandbox.state.job_seconds = 100
    provider = service.provider("apixo")
    submission = await provider.submit(GenerationRequest(prompt="a fox"))
    status = await provider.status(submission.job)
    assert (status.state, status.raw["state"]) == ("queued", "pending")


async def test_unknown_task_id_is_a_validation_error(service, sandbox):
    with pytest.raises(ValidationError, match=r"HTTP 404"):
        await service.provider("apixo").status(JobRef(provider="apixo", model=PRO, task_id="nope"))


async def test_waits_out_429_with_retry_after_on_status_and_still_succeeds(settings, sandbox):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(min(seconds, 0.05))

    service = GenerationService(settings, sleep=sleep)
    sandbox.state.inject("apixo", "status", "429")
    try:
        events = await collect(service, GenerationRequest(prompt="a fox"), [("apixo", PRO)])
    finally:
        await service.aclose()
    assert final(events, "apixo").state == "succeeded"
    assert float(RETRY_AFTER_S) in waits
    assert sandbox.state.count("apixo", "status") >= 2


async def test_does_not_retry_create_on_500(service, sandbox):
    sandbox.state.inject("apixo", "create", "500")
    events = await collect(service, GenerationRequest(prompt="a fox"), [("apixo", PRO)])
    done = final(events, "apixo")
    assert (done.state, done.kind) == ("failed", "unavailable")
    assert "HTTP 500" in done.error
    assert sandbox.state.count("apixo", "create") == 1
    assert sandbox.state.count("apixo", "status") == 0


async def test_sandbox_delivers_an_unsigned_status_envelope_that_parse_callback_reads(service, sandbox):
    received: asyncio.Future[tuple[str, bytes]] = asyncio.get_running_loop().create_future()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.lower().split("\r\n")
        length = int(next(line.split(":")[1] for line in lines if line.startswith("content-length")))
        received.set_result((head.lower(), await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = service.provider("apixo")
    async with server:
        submission = await provider.submit(
            GenerationRequest(prompt="a fox"), callback_url=f"http://127.0.0.1:{port}/hook"
        )
        head, body = await asyncio.wait_for(received, timeout=5)
    assert submission.sent.body["request_type"] == "callback"
    assert submission.sent.body["callback_url"] == f"http://127.0.0.1:{port}/hook"
    assert "signature" not in head
    payload = json.loads(body)
    assert (payload["code"], payload["message"], payload["data"]["state"]) == (200, "success", "success")
    assert isinstance(payload["data"]["resultJson"], str)
    update = provider.parse_callback({}, body, now=time.time())
    assert (update.task_id, update.status) == (submission.job.task_id, None)
    assert (await provider.status(submission.job)).state == "succeeded"


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        (CREATE, {"input": {"mode": "pro"}}, 400, "Missing required field: input.prompt"),
        (CREATE, {"input": {**OK_INPUT, "safety_tolerance": 2}}, 400, "Unknown field: input.safety_tolerance"),
        ("/apixo/api/v1/generateTask/flux-kontext-ultra", {"input": OK_INPUT}, 404, "Model not found"),
    ],
)
async def test_sandbox_answers_bad_requests_with_apixos_error_envelope(sandbox, path, body, status, detail):
    async with httpx.AsyncClient() as client:
        response = await client.post(sandbox.url + path, json=body, headers={"Authorization": "Bearer k"})
    assert response.status_code == status
    assert response.json()["code"] == status
    assert response.json()["message"] == apixo_sandbox.TITLES[status]
    assert response.json()["data"]["error"].startswith(detail)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"input": {"mode": "pro", "prompt": "x", "safety_tolerance": 2}}, "input.safety_tolerance"),
        ({"input": {"mode": "pro", "prompt": "x", "aspectRatio": "1:1"}}, "input.aspectRatio"),
        ({"input": {"mode": "pro", "prompt": "x", "prompt_upsampling": True}}, "input.prompt_upsampling"),
        ({"input": {"mode": "pro", "prompt": "x", "SafetyTolerance": 2}}, "input.SafetyTolerance"),
        ({"model": "flux-kontext-pro", "input": {"mode": "pro", "prompt": "x"}}, "Unknown field: model"),
        ({"input": {"mode": "ultra", "prompt": "x"}}, "input.mode"),
        ({"input": {"prompt": "x"}}, "input.mode"),
        ({"input": {"mode": "pro"}}, "input.prompt"),
        ({"input": {"mode": "pro", "prompt": "x", "safetyTolerance": 3}}, "safetyTolerance"),
        ({"input": {"mode": "pro", "prompt": "x", "safetyTolerance": "2"}}, "safetyTolerance"),
        ({"input": {"mode": "pro", "prompt": "x", "promptUpsampling": "yes"}}, "promptUpsampling"),
        ({"input": {"mode": "pro", "prompt": "x", "image_urls": "https://a/b.png"}}, "array"),
        ({"input": {"mode": "pro", "prompt": "x", "image_urls": ["https://a/b.png", "https://a/c.png"]}}, "at most 1"),
        ({"input": {"mode": "pro", "prompt": "x", "aspect_ratio": "3:2"}}, "aspect_ratio"),
        ({"request_type": "callback", "input": {"mode": "pro", "prompt": "x"}}, "callback_url"),
        ({"provider": "cheapest", "input": {"mode": "pro", "prompt": "x"}}, "provider"),
        ({"prompt": "x"}, "Unknown field: prompt"),
    ],
)
def test_sandbox_rejects_what_apixo_documents_as_invalid(body, problem):
    assert problem in (apixo_sandbox.validate(body) or "")


@pytest.mark.parametrize(
    "body",
    [
        {"input": {"mode": "max", "prompt": "x", "image_url": "https://a/b.png"}},  # the older page's field
        {"request_type": "async", "provider": "official", "input": {"mode": "pro", "prompt": "x", "watermark": "w"}},
    ],
)
def test_sandbox_tolerates_the_legacy_image_url_and_documented_options(body):
    assert apixo_sandbox.validate(body) is None


# --- pure: what is sent --------------------------------------------------------------------------


def test_payload_uses_the_documented_mixed_casing_byte_for_byte():
    request = GenerationRequest(
        prompt="a fox",
        model=MAX,
        aspect_ratio="21:9",
        output_format="png",
        safety_tolerance=1,
        prompt_upsampling=True,
        enable_translation=False,
    )
    wire_text = json.dumps(to_payload(request, "max", "https://x/a.png", None), separators=(",", ":"))
    assert wire_text == (
        '{"request_type":"async","input":{"mode":"max","prompt":"a fox","aspect_ratio":"21:9",'
        '"image_urls":["https://x/a.png"],"output_format":"png","safetyTolerance":1,'
        '"promptUpsampling":true,"enableTranslation":false}}'
    )


def test_payload_asks_for_a_callback_only_when_given_a_url_and_never_sends_provider():
    request = GenerationRequest(prompt="a fox")
    assert to_payload(request, "pro", None, None) == {
        "request_type": "async",
        "input": {"mode": "pro", "prompt": "a fox", "output_format": "jpeg", "promptUpsampling": False},
    }
    with_callback = to_payload(request, "pro", None, "https://me/hook")
    assert (with_callback["request_type"], with_callback["callback_url"]) == ("callback", "https://me/hook")
    assert "provider" not in with_callback


async def test_an_error_code_inside_an_http_200_envelope_is_raised():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": 401, "message": "Unauthorized", "data": {"error": "Invalid API Key"}})

    with pytest.raises(AuthenticationError, match=r"Unauthorized: Invalid API Key\. Check APIXO_API_KEY"):
        await adapter_with(handler).submit(GenerationRequest(prompt="a fox"))
    assert str(seen[0].url) == "https://api.apixo.ai/api/v1/generateTask/flux-kontext"
    assert seen[0].headers["authorization"] == "Bearer k-123"
    assert len(seen) == 1


async def test_status_reads_the_task_by_query_parameter():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        data = {"taskId": "t1", "state": "success", "resultJson": '{"resultUrls":["https://cdn.apixo.ai/o.jpg"]}'}
        return httpx.Response(200, json={"code": 200, "message": "success", "data": data})

    status = await adapter_with(handler).status(JobRef(provider="apixo", model=PRO, task_id="t1"))
    assert status.image_urls == ("https://cdn.apixo.ai/o.jpg",)
    assert str(seen[0].url) == "https://api.apixo.ai/api/v1/statusTask/flux-kontext?taskId=t1"


# --- pure: what is read --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("pending", "queued"),
        ("processing", "running"),
        ("processing_r2", "running"),
        ("rendering_somewhere_new", "running"),
        (None, "running"),
        ("success", "succeeded"),
        ("SUCCESS", "succeeded"),
        ("failed", "failed"),
    ],
)
def test_apixo_states_map_to_job_states(state, expected):
    assert to_status({"taskId": "t", "state": state}).state == expected


@pytest.mark.parametrize(
    ("result_json", "urls"),
    [
        ('{"resultUrls":["https://cdn/a.jpg"]}', ("https://cdn/a.jpg",)),
        ({"resultUrls": ["https://cdn/a.jpg"]}, ("https://cdn/a.jpg",)),
        ("not json", ()),
        (None, ()),
    ],
)
def test_result_urls_come_from_the_result_json_string(result_json, urls):
    assert to_status({"state": "success", "resultJson": result_json}).image_urls == urls


@pytest.mark.parametrize("fail_code", FAIL_CODES)
def test_fail_codes_become_the_error_code_and_only_content_codes_are_moderation(fail_code):
    status = to_status({"state": "failed", "failCode": fail_code, "failMsg": "why it failed"})
    assert (status.state, status.error_code, status.error) == ("failed", fail_code, "why it failed")
    assert status.moderated is (fail_code in {"CONTENT_VIOLATION", "NSFW_DETECTED"})


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"code":200,"data":{}}', b'{"code":200}'])
def test_callback_without_a_task_id_is_rejected(body):
    with pytest.raises(WebhookError, match="taskId|not a JSON object"):
        adapter_with(lambda r: httpx.Response(500)).parse_callback({}, body, now=0.0)


def test_spec_registers_apixo_with_its_schedule_prices_and_capabilities():
    assert REGISTRY["apixo"] is SPEC
    assert (SPEC.label, SPEC.key_env, SPEC.base_url_env) == ("APIXO", "APIXO_API_KEY", "APIXO_BASE_URL")
    assert SPEC.poll == PollSchedule(first_s=3.0, interval_s=3.0)
    assert {model: price.usd for model, price in SPEC.prices.items()} == {PRO: 0.03, MAX: 0.06}
    caps = SPEC.capabilities
    assert (caps.upload, caps.inline_image, caps.seed, caps.guidance) == (False, False, False, False)
    assert (caps.safety_range, caps.safety_range_edit, caps.translation, caps.callbacks) == ((0, 2), (0, 2), True, True)


def test_a_state_apixo_does_not_document_is_marked_unknown():
    status = to_status({"taskId": "t", "state": "finished"})
    assert status.state == "running" and status.unknown == "finished"


@pytest.mark.parametrize("word", ["pending", "processing", "processing_r2", "success", "failed", "SUCCESS"])
def test_apixos_documented_states_are_known(word):
    assert to_status({"taskId": "t", "state": word, "resultJson": '{"resultUrls": ["https://x"]}'}).unknown is None
