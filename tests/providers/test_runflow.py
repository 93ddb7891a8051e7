"""Contract tests: the Runflow adapter against the Runflow sandbox over loopback HTTP, plus pure units."""

from __future__ import annotations

import json

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from playground.errors import AuthenticationError, UnsupportedParameterError, WebhookError
from playground.http import HttpClient
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage
from playground.providers import runflow as _runflow_adapter
from playground.providers.base import ProviderConfig
from playground.providers.runflow import (
    SECRET_ENV,
    SPEC,
    RunflowProvider,
    output_urls,
    runflow_signature,
    to_payload,
    to_status,
)
from playground.sandbox import runflow as runflow_sandbox
from playground.sandbox.core import SandboxState
from tests.conftest import TEST_KEY, collect, final, png_bytes

SECRET = "whsec_test_secret"
RUN_ID = "0190f0e4-7c1a-7b3e-9d2a-1c2b3d4e5f60"


def served_png(sandbox, size=(64, 48)) -> str:
    return f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes(size), 'image/png')}"


def adapter(secret: str | None = SECRET) -> RunflowProvider:
    secrets = {SECRET_ENV: SecretStr(secret)} if secret else {}
    config = ProviderConfig(
        name="runflow",
        label="Runflow",
        base_url="https://api.runflow.io",
        api_key=SecretStr("rf_live_x"),
        key_env="RUNFLOW_API_KEY",
        secrets=secrets,
    )
    return RunflowProvider(SPEC, config, HttpClient(httpx.AsyncClient(), provider="runflow", label="Runflow"))


def delivery(payload: dict, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {"runflow-request-id": "req-1", "runflow-signature": runflow_signature(body, secret)}, body


COMPLETED = {
    "event": "run.completed",
    "run_id": RUN_ID,
    "status": "succeeded",
    "output": {"outputs": [{"url": "https://cdn.runflow.io/a.jpg", "type": "image"}]},
    "duration_ms": 4100,
    "created_at": "2026-05-06T10:00:00.000+00:00",
    "completed_at": "2026-05-06T10:00:04.100+00:00",
    "metadata": None,
}


# --- contract tests against the sandbox ------------------------------------------------------------


async def test_edit_with_a_url_succeeds_with_the_requested_ratio_and_the_exact_body(service, sandbox):
    url = served_png(sandbox)
    request = GenerationRequest(
        prompt="make it blue",
        image=InputImage(url=url),
        aspect_ratio="16:9",
        seed=7,
        safety_tolerance=3,
        guidance=4.5,
        prompt_upsampling=True,
        output_format="png",
    )
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "succeeded", done.error
    with Image.open(done.result.path) as img:
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
        assert img.format == "PNG"
    assert done.result.sent.body == {
        "input": {
            "prompt": "make it blue",
            "image_url": url,
            "aspect_ratio": "16:9",
            "guidance_scale": 4.5,
            "output_format": "png",
            "safety_tolerance": "3",
            "enhance_prompt": True,
            "seed": 7,
        }
    }
    assert done.result.sent.url == f"{sandbox.url}/runflow/v1/models/black-forest-labs/flux-pro/kontext/runs"
    assert done.result.sent.headers["Authorization"] == "Bearer $RUNFLOW_API_KEY"
    assert done.result.cost_usd == 0.04


async def test_only_the_fields_the_user_set_are_sent(service, sandbox):
    url = served_png(sandbox)
    request = GenerationRequest(prompt="x", image=InputImage(url=url))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "succeeded", done.error
    assert done.result.sent.body == {"input": {"prompt": "x", "image_url": url, "output_format": "jpeg"}}


async def test_max_runs_on_its_own_model_path(service, sandbox):
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-max")]), "runflow", "flux-kontext-max")
    assert done.state == "succeeded", done.error
    assert done.result.sent.url.endswith("/v1/models/black-forest-labs/flux-pro/kontext/max/runs")
    assert done.result.cost_usd == 0.08


async def test_a_model_path_can_be_overridden_by_its_environment_variable(service, sandbox):
    values = {**service.settings.values, "RUNFLOW_MAX_MODEL_PATH": "black-forest-labs/flux-kontext-max-v2"}
    service.settings = service.settings.model_copy(update={"values": values})
    request = GenerationRequest(prompt="x", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-max")]), "runflow", "flux-kontext-max")
    assert done.state == "failed" and done.code == "MODEL_NOT_FOUND"
    assert "set RUNFLOW_MAX_MODEL_PATH" in done.error and "black-forest-labs/flux-kontext-max-v2" in done.error
    assert sandbox.state.count("runflow", "create") == 1
    assert sandbox.state.requests[-1].path.endswith("/v1/models/black-forest-labs/flux-kontext-max-v2/runs")


async def test_text_to_image_is_refused_before_anything_is_sent(service, sandbox):
    with pytest.raises(UnsupportedParameterError, match="only edits"):
        service.plan(
            GenerationRequest(prompt="a red fox", aspect_ratio="16:9"), [("runflow", "flux-kontext-pro")]
        ).raise_first()
    assert sandbox.state.count() == 0


async def test_safety_tolerance_zero_is_refused_before_anything_is_sent(service, sandbox):
    request = GenerationRequest(prompt="x", image=InputImage(url="https://example.com/a.png"), safety_tolerance=0)
    with pytest.raises(UnsupportedParameterError, match="1 to 6"):
        service.plan(request, [("runflow", "flux-kontext-pro")]).raise_first()
    assert sandbox.state.count() == 0


async def test_edit_with_a_local_file_goes_through_the_three_step_asset_upload(service, sandbox):
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(png_bytes((90, 60)), "cat.png"))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "succeeded", done.error
    steps = [(r.method, r.stage) for r in sandbox.state.requests if r.stage.startswith("upload")]
    assert steps == [("POST", "upload"), ("PUT", "upload-put"), ("POST", "upload")]
    assert done.result.sent.body["input"]["image_url"].startswith(f"{sandbox.url}/files/")
    assert sandbox.state.count("runflow", "create") == 1


async def test_an_upload_fault_is_retried_without_creating_two_runs(service, sandbox):
    sandbox.state.inject("runflow", "upload", "503")
    request = GenerationRequest(prompt="x", image=image_from_bytes(png_bytes(), "cat.png"))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "succeeded", done.error
    assert sandbox.state.count("runflow", "create") == 1


async def test_wrong_key_is_an_authentication_error_naming_the_variable_not_the_key(service, sandbox):
    sandbox.state.keys["runflow"] = "the-right-key"
    request = GenerationRequest(prompt="x", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "failed"
    assert done.kind == AuthenticationError.default_code and done.code == "UNAUTHORIZED"
    assert "RUNFLOW_API_KEY" in done.error
    assert "the-right-key" not in done.error and TEST_KEY not in done.error


async def test_moderated_run_surfaces_the_providers_reason(service, sandbox):
    request = GenerationRequest(prompt="a fox sandbox:moderate", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "failed" and done.kind == "moderated" and done.code == "CONTENT_POLICY_VIOLATION"
    assert "NSFW" in done.error


async def test_failed_run_surfaces_failure_code_message_and_stage(service, sandbox):
    request = GenerationRequest(prompt="a fox sandbox:fail", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "failed" and done.kind == "job_failed" and done.code == "PROVIDER_ERROR"
    assert "Upstream provider returned an error" in done.error and "stage: inference" in done.error


async def test_429_on_status_is_waited_out(service, sandbox):
    sandbox.state.inject("runflow", "status", "429")
    request = GenerationRequest(prompt="x", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "succeeded", done.error
    assert sandbox.state.count("runflow", "status") >= 2


async def test_does_not_retry_create_on_500(service, sandbox):
    sandbox.state.inject("runflow", "create", "500")
    request = GenerationRequest(prompt="x", image=InputImage(url=served_png(sandbox)))
    done = final(await collect(service, request, [("runflow", "flux-kontext-pro")]), "runflow")
    assert done.state == "failed" and done.kind == "unavailable" and done.code == "INTERNAL_ERROR"
    assert sandbox.state.count("runflow", "create") == 1


# --- the sandbox speaks Runflow's protocol -----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"imageUrl": "https://x/a.png", "prompt": "x"}, "input.imageUrl"),
        ({"image_url": "https://x/a.png"}, "input.prompt"),
        ({"prompt": "x"}, "input.image_url"),
        ({"prompt": "x", "image_url": "https://x/a.png", "safety_tolerance": 2}, "input.safety_tolerance"),
        ({"prompt": "x", "image_url": "https://x/a.png", "aspect_ratio": "5:4"}, "input.aspect_ratio"),
        ({"prompt": "x", "image_url": "https://x/a.png", "guidance_scale": 25}, "input.guidance_scale"),
        ({"prompt": "x", "image_url": "data:image/png;base64,AAAA"}, "input.image_url"),
    ],
)
def test_sandbox_rejects_what_the_real_api_rejects(given, field):
    assert runflow_sandbox.validate({"input": given})[0]["field"] == field


def test_sandbox_rejects_unknown_top_level_fields():
    assert runflow_sandbox.validate({"input": {"prompt": "x"}, "callbackUrl": "https://x"})[0]["field"] == "callbackUrl"


async def test_sandbox_answers_unknown_models_and_missing_keys_in_runflows_error_shape(sandbox):
    body = {"input": {"prompt": "x", "image_url": "https://x/a.png"}}
    base = f"{sandbox.url}/runflow/v1/models"
    async with httpx.AsyncClient() as client:
        unknown = await client.post(f"{base}/acme/flux-9/runs", json=body, headers={"Authorization": "Bearer k"})
        no_key = await client.post(f"{base}/black-forest-labs/flux-pro/kontext/runs", json=body)
        bad = await client.post(
            f"{base}/black-forest-labs/flux-pro/kontext/runs",
            json={"input": {"prompt": "x"}},
            headers={"Authorization": "Bearer k"},
        )
    assert unknown.status_code == 404 and unknown.json()["code"] == "MODEL_NOT_FOUND"
    assert no_key.status_code == 401 and no_key.json() == {
        "code": "UNAUTHORIZED",
        "message": "Missing or invalid API key",
        "errors": None,
    }
    assert bad.status_code == 422 and bad.json()["code"] == "INPUT_VALIDATION_FAILED"
    assert bad.json()["errors"][0]["field"] == "input.image_url"


async def test_sandbox_upload_url_refuses_a_request_carrying_the_api_key(sandbox):
    content = png_bytes()
    reserve = {"filename": "a.png", "mime_type": "image/png", "size_bytes": len(content)}
    async with httpx.AsyncClient() as client:
        slot = (
            await client.post(
                f"{sandbox.url}/runflow/v1/asset-uploads", json=reserve, headers={"Authorization": "Bearer k"}
            )
        ).json()
        put = await client.put(
            slot["upload_url"], content=content, headers={"Content-Type": "image/png", "Authorization": "Bearer k"}
        )
    assert put.status_code == 400 and b"Only one auth mechanism" in put.content


async def test_sandbox_callback_is_signed_so_the_adapter_accepts_it():
    state = SandboxState(job_seconds=0.01)
    job = state.new_job("runflow", "flux-kontext-pro", "x", {"input": {"prompt": "x"}}, aspect_ratio="1:1")
    body, headers = await runflow_sandbox.callback(state, job, "http://127.0.0.1:1", "Runflow", "runflow")
    secret = runflow_sandbox.SANDBOX_SECRETS[SECRET_ENV]
    update = adapter(secret).parse_callback({k.lower(): v for k, v in headers.items()}, body, now=0.0)
    assert update.status is not None and update.status.state == "succeeded"
    assert update.status.image_urls == (f"http://127.0.0.1:1/files/result-{job.id}.jpg",)
    assert json.loads(body)["completed_at"].endswith("+00:00")


# --- pure units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "state"),
    [
        ({"status_code": "queued"}, "queued"),
        ({"status_code": "dispatching"}, "queued"),
        ({"status_code": "running"}, "running"),
        ({"status_code": "warming_up"}, "running"),
        ({"status_code": "succeeded", "output": {"outputs": [{"url": "https://x/a.jpg"}]}}, "succeeded"),
        ({"status_code": "partial_succeeded", "output": {"image_urls": ["https://x/a.jpg"]}}, "succeeded"),
        ({"status_code": "partial_succeeded", "output": {}}, "failed"),
        ({"status_code": "failed", "failure_code": "INPUT_VALIDATION_FAILED"}, "failed"),
        ({"status_code": "canceled"}, "canceled"),
        ({"status_code": "cancelled"}, "canceled"),
        ({"status_code": "SUCCEEDED", "output": {"url": "https://x/a.jpg"}}, "succeeded"),
    ],
)
def test_status_codes_map_to_states(run, state):
    assert to_status(run).state == state


@pytest.mark.parametrize(
    "output",
    [
        {"outputs": [{"url": "https://x/a.jpg", "type": "image"}]},
        {"image_urls": ["https://x/a.jpg"]},
        {"image": {"url": "https://x/a.jpg"}},
        {"url": "https://x/a.jpg"},
        {"output_url": "https://x/a.jpg"},
    ],
)
def test_output_url_is_read_in_the_sdks_fallback_order(output):
    assert output_urls(output) == ("https://x/a.jpg",)


def test_succeeded_without_an_image_but_flagged_nsfw_is_moderated():
    status = to_status({"status_code": "succeeded", "output": {"outputs": [], "nsfw_detected": True}})
    assert status.state == "failed" and status.moderated


def test_failure_reads_the_older_failure_stage_and_the_sdks_error_object():
    status = to_status(
        {
            "status_code": "failed",
            "failure_stage": "preprocess",
            "error": {"code": "MEDIA_FETCH_FAILED", "message": "could not fetch image_url"},
        }
    )
    assert status.error == "could not fetch image_url (stage: preprocess)"
    assert status.error_code == "MEDIA_FETCH_FAILED" and not status.moderated


def test_a_failure_with_only_a_code_and_a_stage_still_says_why():
    status = to_status(
        {"status_code": "failed", "failure_code": "INPUT_VALIDATION_FAILED", "failure_stage_code": "preprocess"}
    )
    assert status.error == "failure code INPUT_VALIDATION_FAILED (stage: preprocess)"
    assert status.error_code == "INPUT_VALIDATION_FAILED" and not status.moderated


def test_payload_sends_safety_tolerance_as_a_string_and_a_callback_url_when_given():
    request = GenerationRequest(prompt="x", image=InputImage(url="https://x/a.png"), safety_tolerance=6)
    body = to_payload(request, "https://x/a.png", "https://me.example/hook")
    assert body["input"]["safety_tolerance"] == "6" and body["callback_url"] == "https://me.example/hook"


def test_a_correctly_signed_callback_parses():
    headers, body = delivery(COMPLETED)
    update = adapter().parse_callback(headers, body, now=1e9)
    assert update.task_id == RUN_ID and update.delivery_id == "req-1"
    assert update.status is not None and update.status.image_urls == ("https://cdn.runflow.io/a.jpg",)


def test_a_forged_signature_raises():
    headers, body = delivery(COMPLETED, secret="whsec_someone_else")
    with pytest.raises(WebhookError, match="does not match"):
        adapter().parse_callback(headers, body, now=1e9)


def test_a_tampered_body_raises():
    headers, body = delivery(COMPLETED)
    with pytest.raises(WebhookError):
        adapter().parse_callback(headers, body.replace(b"a.jpg", b"b.jpg"), now=1e9)


def test_a_missing_signature_raises_when_a_secret_is_configured():
    _, body = delivery(COMPLETED)
    with pytest.raises(WebhookError, match="no Runflow-Signature"):
        adapter().parse_callback({"runflow-request-id": "req-1"}, body, now=1e9)


def test_an_old_delivery_still_verifies_because_runflow_signs_no_timestamp():
    headers, body = delivery(COMPLETED)
    assert adapter().parse_callback(headers, body, now=4e9).delivery_id == "req-1"


def test_either_secret_verifies_during_a_rotation():
    headers, body = delivery(COMPLETED, secret="whsec_new")
    update = adapter("whsec_old, whsec_new").parse_callback(headers, body, now=1e9)
    assert update.status is not None and update.status.state == "succeeded"


def test_without_a_secret_the_callback_is_left_for_status_to_confirm():
    headers, body = delivery(COMPLETED, secret="anything")
    update = adapter(None).parse_callback(headers, body, now=1e9)
    assert update.task_id == RUN_ID and update.status is None


@pytest.mark.parametrize(
    ("payload", "state", "moderated"),
    [
        (
            {
                "event": "run.failed",
                "status": "failed",
                "output": {"code": "CONTENT_POLICY_VIOLATION", "message": "flagged"},
            },
            "failed",
            True,
        ),
        ({"event": "run.failed", "status": "failed", "output": None}, "failed", False),
        ({"event": "run.cancelled", "status": "cancelled", "output": None}, "canceled", False),
        ({"event": "run.partial_succeeded", "output": {"image_urls": ["https://x/a.jpg"]}}, "succeeded", False),
    ],
)
def test_callback_events_map_to_states(payload, state, moderated):
    headers, body = delivery({"run_id": RUN_ID, **payload})
    status = adapter().parse_callback(headers, body, now=1e9).status
    assert status is not None and status.state == state and status.moderated == moderated


def test_a_run_status_runflow_does_not_document_is_marked_unknown():
    status = _runflow_adapter.to_status({"id": "r", "status_code": "warming"})
    assert status.state == "running" and status.unknown == "warming"


@pytest.mark.parametrize("word", ["queued", "dispatching", "running", "succeeded", "failed", "canceled"])
def test_runflows_run_statuses_are_known(word):
    run = {"id": "r", "status_code": word, "output": {"outputs": [{"type": "image", "url": "https://x"}]}}
    assert _runflow_adapter.to_status(run).unknown is None
