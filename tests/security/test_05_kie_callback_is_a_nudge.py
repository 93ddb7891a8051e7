"""Finding 5: KIE signs only taskId.timestamp, yet a callback's body was taken as the job's final state (a
tampered body failed a job with the attacker's text) and its result URL would have been downloaded unchecked."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from playground.models import GenerationRequest
from playground.providers.kie import kie_signature
from playground.sandbox.kie import SANDBOX_SECRETS
from tests.conftest import collect, final

KEY = SANDBOX_SECRETS["KIE_WEBHOOK_HMAC_KEY"]  # the signing key the service under test is configured with


def signed_post(url: str, task_id: str, body: dict[str, object]) -> httpx.Response:
    """A delivery whose signature is valid: KIE's HMAC covers the task id and the time, nothing of the body."""
    timestamp = str(int(time.time()))
    headers = {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": kie_signature(task_id, timestamp, KEY)}
    return httpx.post(f"{url}/webhooks/kie", content=json.dumps(body), headers=headers, timeout=10)


async def test_a_validly_signed_kie_body_decides_nothing_the_status_read_does(
    callback_service, receiver_url, sandbox, listener
):
    url, _ = receiver_url
    sandbox.state.job_seconds = 2.0
    fox = GenerationRequest(prompt="a fox")
    run = asyncio.ensure_future(collect(callback_service, fox, [("kie", "flux-kontext-pro")]))
    while not sandbox.state.jobs or callback_service.inbox.waiter("kie", next(iter(sandbox.state.jobs))) is None:
        await asyncio.sleep(0.01)  # until the job was created and waits for its callback
    (task_id,) = sandbox.state.jobs
    lies = [
        {"code": 501, "msg": "ATTACKER: your job failed, see evil.example", "data": {"taskId": task_id}},
        {"code": 200, "msg": "ok", "data": {"taskId": task_id, "info": {"resultImageUrl": f"{listener.url}/meta"}}},
    ]
    answers = [await asyncio.to_thread(signed_post, url, task_id, lie) for lie in lies]
    events = await run
    assert [a.status_code for a in answers] == [200, 200]  # accepted as nudges
    done = final(events, "kie")
    assert done.state == "succeeded", done.error
    assert "ATTACKER" not in str([e.model_dump() for e in events])
    assert listener.seen == [], "a URL from an unverifiable body was fetched"
    assert done.result is not None and listener.url not in done.result.image_url
    assert sandbox.state.count("kie", "status") >= 2, "each nudge is confirmed by a status read"
