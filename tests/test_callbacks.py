"""Callbacks end to end: the sandbox POSTs signed deliveries to our receiver over loopback (history on both stores)."""

from __future__ import annotations

import time

import httpx
import pytest

from playground.models import GenerationRequest
from playground.providers import REGISTRY
from playground.providers.kie import kie_signature
from playground.sandbox.server import protocol
from playground.service import GenerationService
from tests.conftest import callback_answers, collect, final

FOX = GenerationRequest(prompt="a red fox")


@pytest.fixture
async def callback_service(settings, receiver_url, open_store):
    """A service whose providers call back to our receiver, keeping its history on SQLite or PostgreSQL (both run)."""
    url, holder = receiver_url
    store = open_store()
    service = GenerationService(
        settings.model_copy(update={"poll_interval_s": 5.0}), callback_base_url=url, history=store
    )
    holder["service"] = service
    yield service
    await service.aclose()
    await store.aclose()


async def test_a_signed_kie_callback_is_a_nudge_confirmed_by_one_status_read(callback_service, sandbox):
    # KIE signs taskId.timestamp only: the body's claims are not trusted, the status read decides.
    events = await collect(callback_service, FOX, [("kie", "flux-kontext-pro")])
    assert final(events, "kie").state == "succeeded"
    assert sandbox.state.count("kie", "status") == 1
    assert await callback_answers(sandbox, "kie", count=1) == [200]


async def test_unsigned_fluxapi_callback_is_confirmed_with_one_status_read(callback_service, sandbox):
    events = await collect(callback_service, FOX, [("fluxapi", "flux-kontext-pro")])
    assert final(events, "fluxapi").state == "succeeded"
    assert sandbox.state.count("fluxapi", "status") == 1


async def test_a_duplicate_delivery_after_the_job_finished_gets_a_2xx_and_changes_nothing(callback_service, sandbox):
    sandbox.state.callback_copies = 2
    events = await collect(callback_service, FOX, [("kie", "flux-kontext-pro")])
    assert [e.state for e in events].count("succeeded") == 1
    codes = await callback_answers(sandbox, "kie", count=2)
    assert len(codes) == 2 and all(200 <= code < 300 for code in codes)


def signed(task_id: str, key: str, timestamp: int) -> dict[str, str]:
    return {"X-Webhook-Timestamp": str(timestamp), "X-Webhook-Signature": kie_signature(task_id, str(timestamp), key)}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: signed("t1", "wrong-key", int(time.time())), "does not match"),
        (lambda: signed("t1", "sandbox-kie-hmac-key", int(time.time()) - 3600), "more than 300 s"),
        (dict, "missing"),
    ],
)
async def test_forged_stale_or_unsigned_kie_deliveries_are_rejected(callback_service, receiver_url, headers, reason):
    url, _ = receiver_url
    body = b'{"code": 200, "msg": "ok", "data": {"taskId": "t1", "info": {"resultImageUrl": "http://x/y.png"}}}'
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/webhooks/kie", content=body, headers=headers())
    assert response.status_code == 401
    assert reason in response.json()["status"]
    assert "sandbox-kie-hmac-key" not in response.text


def trusts_callbacks(name: str) -> bool:
    """Whether a delivery is trusted as it comes: the sandbox signs it with a secret the provider's settings
    name, and the provider's signature covers the whole body (KIE signs only the task id and a time)."""
    spec = REGISTRY[name]
    return spec.callback_body_signed and any(env in spec.extra_env for env in protocol(name).SANDBOX_SECRETS)


@pytest.mark.parametrize("provider", list(REGISTRY))
async def test_every_provider_finishes_through_its_callback_and_shrugs_off_a_duplicate(
    callback_service, sandbox, provider
):
    sandbox.state.callback_copies = 2
    image = None
    if not REGISTRY[provider].capabilities.text_to_image:  # edits only
        from playground.models import InputImage
        from tests.conftest import png_bytes

        image = InputImage(url=f"{sandbox.url}/files/{sandbox.state.add_file(png_bytes(), 'image/png')}")
    started = time.monotonic()
    events = await collect(
        callback_service, GenerationRequest(prompt="a red fox", image=image), [(provider, "flux-kontext-pro")]
    )
    assert [e.state for e in events].count("succeeded") == 1, final(events, provider).error
    # Signed whole: no status read at all. Otherwise: the one read must follow the nudge, not the read the waiter makes
    # at its 10 s deadline (the safety-net poll, 15 s, comes later still).
    assert time.monotonic() - started < 8, "waited for the deadline's status read instead of the callback"
    assert sandbox.state.count(provider, "status") == (0 if trusts_callbacks(provider) else 1)
    codes = await callback_answers(sandbox, provider, count=2)  # the duplicate may still be on its way
    assert len(codes) == 2 and all(200 <= code < 300 for code in codes)
