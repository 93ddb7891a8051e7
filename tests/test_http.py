"""The HTTP layer: safe retries only, Retry-After honoured, statuses mapped to readable errors."""

from __future__ import annotations

import httpx
import pytest

from playground.errors import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderUnavailableError,
    RateLimitError,
    ValidationError,
)
from playground.http import MAX_RETRIES, HttpClient, parse_retry_after, retry_delay_s


def make_client(handler, sleeps: list[float]) -> HttpClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpClient(client, provider="demo", label="Demo", key_env="DEMO_API_KEY", sleep=sleep)


async def test_does_not_retry_create_on_500():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"message": "boom"})

    http = make_client(handler, [])
    with pytest.raises(ProviderUnavailableError, match="Demo is unavailable \\(HTTP 500\\): boom"):
        await http.create("POST", "https://demo/jobs", json={})
    assert len(calls) == 1


async def test_a_dropped_connection_on_create_is_not_retried_and_says_the_job_may_exist():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadError("connection reset")

    http = make_client(handler, [])
    with pytest.raises(ProviderConnectionError, match="may have been created"):
        await http.create("POST", "https://demo/jobs", json={})
    assert len(calls) == 1


async def test_a_refused_connection_says_nothing_was_sent():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    http = make_client(handler, [])
    with pytest.raises(ProviderConnectionError, match=r"reached at https://demo \(ConnectError\); nothing was sent"):
        await http.create("POST", "https://demo/jobs", json={})


async def test_fetch_waits_out_429_retry_after_then_succeeds():
    answers = [
        httpx.Response(429, headers={"Retry-After": "2"}, json={"msg": "slow"}),
        httpx.Response(200, json={"ok": 1}),
    ]
    sleeps: list[float] = []
    http = make_client(lambda request: answers.pop(0), sleeps)
    response = await http.fetch("GET", "https://demo/status")
    assert response.json() == {"ok": 1}
    assert sleeps == [2.0]


async def test_fetch_gives_up_after_max_retries():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    sleeps: list[float] = []
    http = make_client(handler, sleeps)
    with pytest.raises(ProviderUnavailableError):
        await http.fetch("GET", "https://demo/status")
    assert len(calls) == MAX_RETRIES + 1 and len(sleeps) == MAX_RETRIES


async def test_fetch_does_not_retry_a_rejected_key():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad key"}})

    http = make_client(handler, [])
    with pytest.raises(AuthenticationError) as caught:
        await http.fetch("GET", "https://demo/status")
    assert len(calls) == 1
    assert str(caught.value) == "Demo rejected the API key (HTTP 401): bad key. Check DEMO_API_KEY."
    assert caught.value.code == "unauthorized"


@pytest.mark.parametrize(
    ("status", "body", "cls", "fragment"),
    [
        (
            422,
            {"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]},
            ValidationError,
            "prompt: field required",
        ),
        (400, {"code": 400, "msg": "bad ratio", "data": None}, ValidationError, "bad ratio"),
        (429, {"title": "Too many"}, RateLimitError, "Too many"),
        (
            400,
            {"code": 400, "message": "Invalid request", "data": {"error": "Missing input.prompt"}},
            ValidationError,
            "Invalid request: Missing input.prompt",
        ),
        (502, "<html>bad gateway</html>", ProviderUnavailableError, "HTTP 502"),
    ],
)
async def test_error_bodies_become_one_readable_sentence(status, body, cls, fragment):
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    http = make_client(handler, [])
    with pytest.raises(cls) as caught:
        await http.create("POST", "https://demo/jobs")
    assert fragment in str(caught.value)
    assert "<html>" not in str(caught.value)


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_jittered_and_capped():
    assert retry_delay_s(0, None, rng=lambda: 0.0) == 0.25
    assert retry_delay_s(0, None, rng=lambda: 1.0) == 0.5
    assert retry_delay_s(10, None, rng=lambda: 1.0) == 8.0
    assert retry_delay_s(0, 1000.0) == 60.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # Runflow 422: the general message, then the first field detail [docs/providers.md, Runflow]
            {"message": "Validation failed", "errors": [{"field": "input.seed", "message": "bad"}]},
            "Validation failed (input.seed: bad)",
        ),
        ({"code": "PERMISSION_DENIED", "message": "Not allowed", "errors": None}, "Not allowed"),
        ({"errors": [{"message": "prompt is required"}]}, "prompt is required"),
    ],
)
def test_an_error_body_gives_its_message_and_the_first_field_detail(body, expected):
    from playground.http import error_message

    assert error_message(body) == expected


def test_insufficient_credits_advises_a_top_up_once():
    from playground.errors import error_for_status

    plain = error_for_status("Demo", 402, "Not enough credits", provider="demo")
    assert str(plain).endswith("Top up your Demo account.")
    told = error_for_status("Demo", 402, "Insufficient balance, please top up", provider="demo")
    assert "Top up your Demo account" not in str(told) and "please top up" in str(told)


async def test_build_client_sends_through_the_given_transport_with_our_user_agent():
    from playground.http import USER_AGENT, build_client

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": 1})

    async with build_client(5.0, transport=httpx.MockTransport(handler)) as client:
        await HttpClient(client, provider="demo", label="Demo").fetch("GET", "https://demo/status")
    assert seen[0].headers["user-agent"] == USER_AGENT
    assert seen[0].extensions["timeout"] == {"connect": 10.0, "read": 5.0, "write": 5.0, "pool": 5.0}
