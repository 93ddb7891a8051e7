"""Contract tests: the RunAPI.ai adapter against its sandbox over loopback HTTP, plus pure unit tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from playground.errors import AuthenticationError, WebhookError
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage, JobEvent, JobResult
from playground.providers import runapi
from playground.providers import runapi as _runapi_adapter
from playground.providers.base import ProviderConfig
from playground.sandbox import runapi as runapi_sandbox
from playground.service import GenerationService
from tests.conftest import TEST_KEY, callback_answers, collect, final, png_bytes

NAME = "runapi"
TASKS = "/runapi/api/v1/flux_kontext/text_to_image"
SECRET = base64.b64encode(b"a test callback secret").decode()
NOW = 1_760_000_000.0


async def run_one(service: GenerationService, request: GenerationRequest, model: str = "flux-kontext-pro") -> JobEvent:
    return final(await collect(service, request, [(NAME, model)]), NAME, model)


def result(done: JobEvent) -> JobResult:
    assert done.state == "succeeded" and done.result is not None, done.error
    return done.result


def sent_body(done: JobEvent) -> dict[str, Any]:
    body = result(done).sent.body
    assert body is not None
    return body


async def test_text_to_image_succeeds_with_the_requested_ratio_and_the_exact_wire_body(service, sandbox):
    done = await run_one(service, GenerationRequest(prompt="a red fox", aspect_ratio="16:9"))
    with Image.open(result(done).path) as img:
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
    sent = result(done).sent
    assert sent.url == f"{sandbox.url}{TASKS}"
    assert sent.body == {
        "model": "flux-kontext-pro",
        "prompt": "a red fox",
        "aspect_ratio": "16:9",
        "output_format": "jpeg",
    }
    assert sent.headers["Authorization"] == "Bearer $RUNAPI_API_KEY"
    assert sent.headers["Accept"] == "application/json"
    assert uuid.UUID(sent.headers["Idempotency-Key"]).version == 4


async def test_png_output_is_saved_as_png(service, sandbox):
    request = GenerationRequest(prompt="a red fox", aspect_ratio="9:16", output_format="png")
    saved = result(await run_one(service, request, "flux-kontext-max"))
    assert saved.mime_type == "image/png" and saved.height > saved.width


async def test_edit_with_a_url_sends_it_as_source_image_url_without_uploading(service, sandbox):
    url = f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes(), 'image/png')}"
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=url), safety_tolerance=1)
    body = sent_body(await run_one(service, request, "flux-kontext-max"))
    assert body["source_image_url"] == url
    assert body["safety_tolerance"] == 1
    assert sandbox.state.count(NAME, "upload") == 0


async def test_edit_with_a_local_file_uploads_it_through_the_files_api_first(service, sandbox):
    content = png_bytes((40, 30), (10, 200, 10))
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(content, "cat.png"))
    body = sent_body(await run_one(service, request))
    assert sandbox.state.count(NAME, "upload") == 1
    assert body["source_image_url"].startswith(f"{sandbox.url}/files/")
    assert any(stored == content for stored, _ in sandbox.state.files.values())


async def test_wrong_key_is_an_authentication_error_naming_the_env_var_not_the_key(service, sandbox):
    sandbox.state.keys[NAME] = "the-right-key"
    done = await run_one(service, GenerationRequest(prompt="x"))
    message = done.error or ""
    assert done.state == "failed"
    assert done.kind == AuthenticationError.default_code
    assert "RUNAPI_API_KEY" in message
    assert "the-right-key" not in message and TEST_KEY not in message


async def test_moderated_job_surfaces_the_content_policy_reason(service, sandbox):
    done = await run_one(service, GenerationRequest(prompt="a fox sandbox:moderate"))
    assert done.state == "failed" and done.kind == "moderated"
    assert "Content policy violation" in (done.error or "")


async def test_failed_job_surfaces_the_providers_reason(service, sandbox):
    done = await run_one(service, GenerationRequest(prompt="a fox sandbox:fail"))
    assert done.state == "failed" and done.kind == "job_failed"
    assert "Image generation failed" in (done.error or "")


async def test_a_429_with_retry_after_on_status_is_waited_out(service, sandbox):
    sandbox.state.inject(NAME, "status", "429")
    result(await run_one(service, GenerationRequest(prompt="a red fox")))
    assert sandbox.state.count(NAME, "status") >= 2


async def test_does_not_retry_create_on_500(service, sandbox):
    sandbox.state.inject(NAME, "create", "500")
    done = await run_one(service, GenerationRequest(prompt="a red fox"))
    assert done.state == "failed" and done.kind == "unavailable"
    assert sandbox.state.count(NAME, "create") == 1
    assert sandbox.state.jobs == {}


async def test_every_submit_sends_a_fresh_idempotency_key(service, sandbox):
    provider = service.provider(NAME)
    first = await provider.submit(GenerationRequest(prompt="a red fox"))
    second = await provider.submit(GenerationRequest(prompt="a red fox"))
    assert first.sent.headers["Idempotency-Key"] != second.sent.headers["Idempotency-Key"]
    assert first.job.task_id != second.job.task_id


async def test_sandbox_replays_a_reused_idempotency_key_and_refuses_it_with_another_body(sandbox):
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": "order-1"}
    body = {"model": "flux-kontext-pro", "prompt": "a red fox"}
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        first = await client.post(TASKS, json=body, headers=headers)
        again = await client.post(TASKS, json=body, headers=headers)
        other = await client.post(TASKS, json={**body, "prompt": "a blue fox"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert len(sandbox.state.jobs) == 1
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"


async def test_sandbox_answers_bad_fields_with_a_422_in_runapis_error_shape(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        response = await client.post(
            TASKS,
            json={"model": "flux-kontext-pro", "prompt": "x", "aspectRatio": "16:9"},
            headers={"Authorization": f"Bearer {TEST_KEY}"},
        )
        unauthorized = await client.get(f"{TASKS}/nope")
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "validation", "message": "Unknown parameter(s): aspectRatio"}
    assert unauthorized.status_code == 401 and unauthorized.json()["error"]["code"] == "authentication"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "flux-kontext-pro", "prompt": "x", "aspectRatio": "16:9"}, "aspectRatio"),
        ({"model": "flux-kontext-ultra", "prompt": "x"}, "model must be one of"),
        ({"prompt": "x"}, "model is required"),
        ({"model": "flux-kontext-pro"}, "prompt is required"),
        ({"model": "flux-kontext-pro", "prompt": "x", "input_image": "https://x/y.png"}, "use source_image_url"),
        ({"model": "flux-kontext-pro", "prompt": "x", "prompt_upsampling": True}, "use enable_prompt_expansion"),
        ({"model": "flux-kontext-pro", "prompt": "x", "aspect_ratio": "3:2"}, "aspect_ratio must be one of"),
        ({"model": "flux-kontext-pro", "prompt": "x", "safety_tolerance": "2"}, "must be an integer"),
        ({"model": "flux-kontext-pro", "prompt": "x", "safety_tolerance": 7}, "between 0 and 6"),
        (
            {"model": "flux-kontext-pro", "prompt": "x", "source_image_url": "https://x/y.png", "safety_tolerance": 3},
            "between 0 and 2",
        ),
        ({"model": "flux-kontext-pro", "prompt": "x", "enable_translation": "yes"}, "must be a boolean"),
    ],
)
def test_sandbox_validation_rejects_what_the_api_rejects(body, words):
    assert words in (runapi_sandbox.validate(body) or "")


def test_sandbox_validation_accepts_a_full_current_body():
    body = runapi.to_payload(
        GenerationRequest(
            prompt="x",
            aspect_ratio="21:9",
            prompt_upsampling=True,
            enable_translation=False,
            safety_tolerance=6,
            output_format="png",
        ),
        "flux-kontext-pro",
        None,
        "https://my.app/hook",
    )
    assert runapi_sandbox.validate(body) is None


def test_payload_uses_the_current_field_names_and_only_what_was_set():
    request = GenerationRequest(prompt="p", prompt_upsampling=True, enable_translation=False, safety_tolerance=2)
    assert runapi.to_payload(request, "flux-kontext-pro", "https://x/in.png", "https://my.app/hook") == {
        "model": "flux-kontext-pro",
        "prompt": "p",
        "output_format": "jpeg",
        "source_image_url": "https://x/in.png",
        "enable_translation": False,
        "enable_prompt_expansion": True,
        "safety_tolerance": 2,
        "callback_url": "https://my.app/hook",
    }


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("pending", "queued"),
        ("processing", "running"),
        ("completed", "succeeded"),
        ("success", "succeeded"),
        ("failed", "failed"),
        ("error", "failed"),
        ("generate_failed", "failed"),
        ("create_task_failed", "failed"),
        ("PROCESSING", "running"),
        ("warming_up", "running"),
        (None, "running"),
    ],
)
def test_status_words_map_to_states(word, state):
    assert runapi.to_status({"id": "t", "status": word, "images": [{"url": "https://x/y.png"}]}).state == state


def test_result_url_prefers_the_cdn_url_and_falls_back_to_origin_url():
    status = runapi.to_status(
        {
            "status": "completed",
            "images": [
                {"url": "https://cdn/a.png", "origin_url": "https://o/a.png"},
                {"origin_url": "https://o/b.png"},
            ],
        }
    )
    assert status.image_urls == ("https://cdn/a.png", "https://o/b.png")


def test_an_error_object_in_a_failed_task_is_read_for_message_and_code():
    status = runapi.to_status({"status": "failed", "error": {"code": "nsfw", "message": "Flagged as NSFW"}})
    assert (status.error, status.error_code, status.moderated) == ("Flagged as NSFW", "nsfw", True)


def signed(body: bytes, *, secret: str = SECRET, ts: float = NOW, delivery_id: str = "d1b3c5e7") -> dict[str, str]:
    """Headers as RunAPI.ai docs documents them, computed here straight from its formula."""
    mac = hmac.new(base64.b64decode(secret), f"{delivery_id}.{int(ts)}.".encode() + body, hashlib.sha256).digest()
    return {
        "x-callback-id": delivery_id,
        "x-callback-timestamp": str(int(ts)),
        "x-callback-signature": base64.b64encode(mac).decode(),
    }


def adapter(secret: str | None = SECRET) -> runapi.RunApiProvider:
    from pydantic import SecretStr

    secrets = {runapi.CALLBACK_SECRET_ENV: SecretStr(secret)} if secret else {}
    config = ProviderConfig(
        name=NAME, label="RunAPI.ai", base_url="http://x", api_key=None, key_env="RUNAPI_API_KEY", secrets=secrets
    )
    return runapi.RunApiProvider(runapi.SPEC, config, None)  # type: ignore[arg-type]


CALLBACK = json.dumps({"id": "task-9", "status": "completed", "images": [{"url": "https://cdn/r.png"}]}).encode()


def test_a_correctly_signed_callback_parses_into_a_verified_status():
    update = adapter().parse_callback(signed(CALLBACK), CALLBACK, now=NOW + 10)
    assert update.task_id == "task-9" and update.delivery_id == "d1b3c5e7"
    assert update.status is not None and update.status.image_urls == ("https://cdn/r.png",)


def test_the_sandbox_signs_exactly_as_seed_000_documents():
    headers = signed(CALLBACK, secret=runapi_sandbox.SANDBOX_SECRETS["RUNAPI_CALLBACK_SECRET"])
    secret = runapi_sandbox.SANDBOX_SECRETS["RUNAPI_CALLBACK_SECRET"]
    assert runapi_sandbox.sign("d1b3c5e7", str(int(NOW)), CALLBACK, secret) == headers["x-callback-signature"]


@pytest.mark.parametrize(
    ("headers", "now", "reason"),
    [
        (signed(CALLBACK, secret=base64.b64encode(b"someone else").decode()), NOW, "does not match"),
        ({**signed(CALLBACK), "x-callback-id": "another-id"}, NOW, "does not match"),
        (signed(CALLBACK), NOW + 301, "more than 300 s"),
        (signed(CALLBACK, ts=NOW + 400), NOW, "more than 300 s"),
        ({}, NOW, "missing"),
    ],
)
def test_forged_stale_or_unsigned_callbacks_raise_webhook_error(headers, now, reason):
    with pytest.raises(WebhookError, match=reason):
        adapter().parse_callback(headers, CALLBACK, now=now)


def test_a_tampered_body_fails_the_signature():
    tampered = CALLBACK.replace(b"r.png", b"evil.png")
    with pytest.raises(WebhookError, match="does not match"):
        adapter().parse_callback(signed(CALLBACK), tampered, now=NOW)


def test_without_a_secret_a_callback_is_only_a_nudge_to_read_the_status():
    update = adapter(secret=None).parse_callback({"x-callback-id": "d1"}, CALLBACK, now=NOW)
    assert (update.task_id, update.status, update.delivery_id) == ("task-9", None, "d1")


async def test_a_signed_sandbox_callback_finishes_the_job_without_a_status_read(callback_service, sandbox):
    body = sent_body(await run_one(callback_service, GenerationRequest(prompt="a red fox")))
    assert sandbox.state.count(NAME, "status") == 0, "finished by a status read, not by the callback"
    assert body["callback_url"].endswith("/webhooks/runapi")
    assert await callback_answers(sandbox, NAME, count=1) == [200]


def test_a_task_status_runapi_does_not_document_is_marked_unknown():
    status = _runapi_adapter.to_status({"id": "t", "status": "rendering"})
    assert status.state == "running" and status.unknown == "rendering"


@pytest.mark.parametrize("word", ["pending", "processing", "completed", "failed"])
def test_runapis_task_statuses_are_known(word):
    assert _runapi_adapter.to_status({"id": "t", "status": word, "images": [{"url": "https://x"}]}).unknown is None
