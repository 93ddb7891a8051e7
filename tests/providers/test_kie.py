"""Contract tests: the KIE / FluxAPI adapter against the sandbox over loopback HTTP.

Facts cited as [doc] are in docs/providers.md, section "KIE AI" (and "FluxAPI.ai").
"""

from __future__ import annotations

import pytest
from PIL import Image

from playground.errors import AuthenticationError
from playground.images import image_from_bytes
from playground.models import GenerationRequest, InputImage
from playground.providers import kie as _kie_adapter
from playground.providers.kie import to_status
from playground.sandbox import kie as kie_sandbox
from tests.conftest import collect, final, png_bytes


@pytest.mark.parametrize("provider", ["kie", "fluxapi"])
async def test_text_to_image_succeeds_with_an_image_of_the_requested_ratio(service, sandbox, provider):
    request = GenerationRequest(prompt="a red fox", aspect_ratio="16:9")
    events = await collect(service, request, [(provider, "flux-kontext-pro")])
    done = final(events, provider)
    assert done.state == "succeeded", done.error
    with Image.open(done.result.path) as img:
        assert img.width / img.height == pytest.approx(16 / 9, rel=0.01)
    assert done.result.sent.body == {
        "prompt": "a red fox",
        "model": "flux-kontext-pro",
        "aspectRatio": "16:9",
        "outputFormat": "jpeg",
        "promptUpsampling": False,
    }
    assert done.result.sent.headers["Authorization"] == f"Bearer ${provider.upper()}_API_KEY"


async def test_edit_with_a_url_passes_the_url_through(service, sandbox):
    source = sandbox.state.add_file(png_bytes(), "image/png")
    url = f"{sandbox.url}/files/{source}"
    request = GenerationRequest(prompt="make it blue", image=InputImage(url=url))
    events = await collect(service, request, [("kie", "flux-kontext-max")])
    done = final(events, "kie", "flux-kontext-max")
    assert done.state == "succeeded", done.error
    assert done.result.sent.body["inputImage"] == url
    assert sandbox.state.count("kie", "upload") == 0


async def test_edit_with_a_local_file_uploads_it_with_kie_base64_upload(service, sandbox):
    request = GenerationRequest(prompt="make it blue", image=image_from_bytes(png_bytes(), "cat.png"))
    events = await collect(service, request, [("kie", "flux-kontext-pro")])
    done = final(events, "kie")
    assert done.state == "succeeded", done.error
    assert sandbox.state.count("kie", "upload") == 1
    assert done.result.sent.body["inputImage"].startswith(f"{sandbox.url}/files/")


async def test_wrong_key_inside_http_200_envelope_is_an_authentication_error(service, sandbox):
    sandbox.state.keys["kie"] = "the-right-key"
    events = await collect(service, GenerationRequest(prompt="x"), [("kie", "flux-kontext-pro")])
    done = final(events, "kie")
    assert done.state == "failed"
    assert done.kind == AuthenticationError.default_code
    assert "KIE_API_KEY" in done.error and "the-right-key" not in done.error


async def test_moderated_job_surfaces_the_providers_reason(service, sandbox):
    events = await collect(service, GenerationRequest(prompt="a fox sandbox:moderate"), [("kie", "flux-kontext-pro")])
    done = final(events, "kie")
    assert done.state == "failed" and done.kind == "moderated" and done.code == "400"
    assert "flagged" in done.error


@pytest.mark.parametrize("provider", ["kie", "fluxapi"])
async def test_the_documented_ultra_tall_16_21_ratio_is_accepted_and_sent(service, sandbox, provider):
    # The quickstarts list 16:21 ("Ultra-tall"), not confirmed [doc]: accept it, send it as is.
    events = await collect(
        service, GenerationRequest(prompt="a lighthouse", aspect_ratio="16:21"), [(provider, "flux-kontext-pro")]
    )
    done = final(events, provider)
    assert done.state == "succeeded", done.error
    assert done.result.sent.body["aspectRatio"] == "16:21"


def test_sandbox_rejects_snake_case_fields_like_the_real_api():
    assert "aspect_ratio" in kie_sandbox.validate({"prompt": "x", "aspect_ratio": "16:9"})


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"successFlag": 0}, "running"),
        ({"successFlag": 1, "response": {"resultImageUrl": "https://x/y.jpg"}}, "succeeded"),
        ({"successFlag": 2, "errorMessage": "bad"}, "failed"),
        ({"successFlag": 3, "errorMessage": "bad"}, "failed"),
        ({"successFlag": 7}, "running"),
    ],
)
def test_success_flags_map_to_states(data, state):
    assert to_status(data).state == state


def test_result_url_is_read_from_a_json_string_response_too():
    status = to_status({"successFlag": 1, "response": '{"resultImageUrl": "https://x/y.jpg"}'})
    assert status.image_urls == ("https://x/y.jpg",)


def test_an_envelope_code_sent_as_a_digit_string_is_still_read():
    # Documented as an integer [doc]; a string "402" must not pass as success (tolerant in what we accept).
    import httpx
    from pydantic import SecretStr

    from playground.errors import InsufficientCreditsError
    from playground.http import HttpClient
    from playground.providers import REGISTRY
    from playground.service import provider_config
    from playground.settings import Settings

    spec = REGISTRY["kie"]
    config = provider_config(spec, Settings(), SecretStr("k"))
    adapter = spec.factory(config, HttpClient(httpx.AsyncClient(), provider="kie", label="KIE AI"))
    envelope = {"code": "402", "msg": "Credits insufficient", "data": None}
    with pytest.raises(InsufficientCreditsError, match="Credits insufficient"):
        adapter._check(httpx.Response(200, json=envelope))


@pytest.mark.parametrize(("data", "unknown"), [({"successFlag": 7}, "successFlag 7"), ({}, "successFlag None")])
def test_a_success_flag_kie_does_not_document_is_marked_unknown(data, unknown):
    status = _kie_adapter.to_status(data)
    assert status.state == "running" and status.unknown == unknown


@pytest.mark.parametrize("flag", [0, 1, 2, 3, "1"])
def test_the_documented_success_flags_are_known(flag):
    assert _kie_adapter.to_status({"successFlag": flag, "response": {"resultImageUrl": "https://x"}}).unknown is None
