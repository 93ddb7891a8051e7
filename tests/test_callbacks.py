"""Callbacks end to end: the sandbox POSTs signed deliveries to our receiver over loopback."""

from __future__ import annotations

import time

import httpx
import pytest
from starlette.applications import Starlette

from playground.models import GenerationRequest
from playground.providers.kie import kie_signature
from playground.sandbox.server import LoopbackServer
from playground.service import GenerationService
from playground.webhooks import routes
from tests.conftest import collect, final

FOX = GenerationRequest(prompt="a red fox")


@pytest.fixture
def receiver_url():
    """Our webhook routes on a loopback port, bound late to the service under test."""
    holder: dict[str, GenerationService] = {}

    class LateBound:
        def deliver_callback(self, *args):
            return holder["service"].deliver_callback(*args)

    with LoopbackServer(Starlette(routes=routes(LateBound(), None))) as server:  # type: ignore[arg-type]
        yield server.url, holder


@pytest.fixture
async def callback_service(settings, receiver_url):
    url, holder = receiver_url
    service = GenerationService(settings.model_copy(update={"poll_interval_s": 5.0}), callback_base_url=url)
    holder["service"] = service
    yield service
    await service.aclose()


async def test_signed_kie_callback_finishes_the_job_without_any_status_read(callback_service, sandbox):
    started = time.monotonic()
    events = await collect(callback_service, FOX, [("kie", "flux-kontext-pro")])
    assert final(events, "kie").state == "succeeded"
    assert time.monotonic() - started < 3, "waited for the safety-net poll instead of the callback"
    assert sandbox.state.count("kie", "status") == 0
    assert [c[2] for c in sandbox.state.callbacks_sent] == [200]


async def test_unsigned_fluxapi_callback_is_confirmed_with_one_status_read(callback_service, sandbox):
    events = await collect(callback_service, FOX, [("fluxapi", "flux-kontext-pro")])
    assert final(events, "fluxapi").state == "succeeded"
    assert sandbox.state.count("fluxapi", "status") == 1


async def test_a_duplicate_delivery_after_the_job_finished_gets_a_2xx_and_changes_nothing(callback_service, sandbox):
    sandbox.state.callback_copies = 2
    events = await collect(callback_service, FOX, [("kie", "flux-kontext-pro")])
    assert [e.state for e in events].count("succeeded") == 1
    time.sleep(0.2)
    assert all(200 <= code < 300 for _, _, code in sandbox.state.callbacks_sent)


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
