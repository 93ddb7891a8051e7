"""The one place that sends requests: timeouts, retries for safe requests only, status -> error.

The transport underneath (aiohttp's pool, error mapping, credentials kept off other origins, guarded
clients for public addresses only) is playground.transport.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from playground.addresses import AddressRefusedError
from playground.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    UnexpectedResponseError,
    error_for_status,
)
from playground.transport import CONNECT_TIMEOUT_S, KEEPALIVE_EXPIRY_S, USER_AGENT, build_client

log = logging.getLogger(__name__)

MAX_RETRIES = 3
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 60.0

__all__ = ["CONNECT_TIMEOUT_S", "KEEPALIVE_EXPIRY_S", "USER_AGENT", "HttpClient", "build_client"]

Sleep = Callable[[float], Awaitable[None]]
Check = Callable[[httpx.Response], None]


class HttpClient:
    """Sends one provider's requests. ``create`` is never retried; ``fetch`` is, within bounds."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        label: str,
        key_env: str | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int = MAX_RETRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.provider = provider
        self.label = label
        self.key_env = key_env
        self._sleep = sleep
        self._max_retries = max_retries
        self._clock = clock
        self.create_timing: tuple[float, float] | None = None
        """When the last create was sent and answered (clock times): the start of the job's measured latency."""

    async def create(self, method: str, url: str, *, check: Check | None = None, **kw: Any) -> httpx.Response:
        """Send a request that may start a paid job: exactly once, whatever happens."""
        sent_at = self._clock()
        try:
            return await self._send_once(method, url, check, creating=True, **kw)
        finally:
            self.create_timing = (sent_at, self._clock())

    async def fetch(
        self, method: str, url: str, *, check: Check | None = None, max_bytes: int | None = None, **kw: Any
    ) -> httpx.Response:
        """Send a request that is safe to repeat (status, result, download), retrying transient errors.

        ``max_bytes``: read the body as it streams and refuse it once it passes this size (a download).
        """
        attempt = 0
        while True:
            try:
                return await self._send_once(method, url, check, creating=False, max_bytes=max_bytes, **kw)
            except ProviderError as exc:
                if not exc.is_retryable or attempt >= self._max_retries:
                    raise
                delay = retry_delay_s(attempt, exc.retry_after_s)
                log.debug("%s: retrying %s %s in %.2f s (%s)", self.provider, method, url, delay, exc.code)
                attempt += 1
                await self._sleep(delay)

    async def _send_once(
        self, method: str, url: str, check: Check | None, *, creating: bool, max_bytes: int | None = None, **kw: Any
    ) -> httpx.Response:
        try:
            if max_bytes is None:
                response = await self.client.request(method, parsed_url(url), **kw)
            else:
                response = await self._capped(method, url, max_bytes, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError, AddressRefusedError) as exc:
            raise self._not_sent(url, exc) from exc  # no connection (or the proxy refused it): nothing was sent
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                self._no_answer("did not answer in time", creating), provider=self.provider
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderConnectionError(
                self._no_answer(f"dropped the connection ({type(exc).__name__})", creating), provider=self.provider
            ) from exc
        if response.is_error:
            raise self.error_from_response(response)
        if check is not None:
            check(response)
        return response

    async def _capped(self, method: str, url: str, max_bytes: int, **kw: Any) -> httpx.Response:
        """The response with its body read while it streams, never more than ``max_bytes`` (+ one chunk)."""
        async with self.client.stream(method, parsed_url(url), **kw) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise self._too_large(url, max_bytes)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise self._too_large(url, max_bytes)
                chunks.append(chunk)
        headers = {k: v for k, v in response.headers.items() if k not in ("content-encoding", "content-length")}
        return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=response.request)

    def _too_large(self, url: str, max_bytes: int) -> ProviderError:
        return UnexpectedResponseError(
            f"{self.label} sent more than {max_bytes // 1_000_000} MB from {_origin(url)}; it was not kept.",
            provider=self.provider,
        )

    def _not_sent(self, url: str, exc: BaseException) -> ProviderError:
        if refused_address(exc):
            return ProviderError(
                f"{self.label} at {_origin(url)} is not on a public address, so the playground does not connect to it.",
                provider=self.provider,
                code="address_refused",
            )
        return ProviderConnectionError(
            f"{self.label} could not be reached at {_origin(url)} ({type(exc).__name__}); nothing was sent.",
            provider=self.provider,
        )

    def _no_answer(self, what: str, creating: bool) -> str:
        sentence = f"{self.label} {what}."
        if creating:
            sentence += f" The job may have been created anyway: check your {self.label} dashboard before trying again."
        return sentence

    def error_from_response(self, response: httpx.Response) -> ProviderError:
        """The error for a 4xx/5xx answer, with the provider's own message when it gave one."""
        body = json_or_none(response)
        return error_for_status(
            self.label,
            response.status_code,
            error_message(body) if body is not None else None,
            provider=self.provider,
            code=error_code(body),
            request_id=response.headers.get("x-request-id"),
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
            key_env=self.key_env,
        )

    def json(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object in a response, or UnexpectedResponseError naming the provider."""
        body = json_or_none(response)
        if not isinstance(body, dict):
            snippet = response.text[:120].replace("\n", " ")
            raise UnexpectedResponseError(
                f"{self.label} answered with something that is not a JSON object: {snippet!r}.",
                provider=self.provider,
            )
        return body


def refused_address(exc: BaseException | None) -> bool:
    """Whether a connection error comes from the address guard (playground.addresses), at any depth."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, AddressRefusedError):
            return True
        exc, seen = exc.__cause__ or exc.__context__ or getattr(exc, "os_error", None), seen + 1
    return False


@functools.lru_cache(maxsize=4096)
def parsed_url(url: str) -> httpx.URL:
    """``url`` parsed once: httpx parses a string URL twice per request (~60 us), a parsed one not at all, and a
    job's create, status and result URLs repeat. httpx URLs are immutable, so sharing them is safe."""
    return httpx.URL(url)


def _origin(url: str) -> str:
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_message(body: Any) -> str | None:
    """The human message in an error body, whatever the provider calls it."""
    if isinstance(body, str):
        return body or None
    if not isinstance(body, dict):
        return None
    general = _first_message(body)
    data = body.get("data")
    detail = error_message(data) if isinstance(data, dict) else None
    if general and detail and detail != general:
        return f"{general}: {detail}"  # APIXO: {"message": "Invalid request", "data": {"error": "Missing ..."}}
    return general or detail


def _first_message(body: dict[str, Any]) -> str | None:
    general = None
    for key in ("error", "message", "msg", "detail", "failMsg", "title", "errorMessage"):
        general = _text(body.get(key))
        if general:
            break
    errors = body.get("errors")
    detail = _field_error(errors[0]) if isinstance(errors, list) and errors else None
    if general and detail and detail not in general:
        return f"{general} ({detail})"  # Runflow 422: errors[] carries the field details [docs/providers.md, Runflow]
    return general or detail


def _field_error(value: Any) -> str | None:
    """One entry of an errors[] list: 'field: message' where it names the field."""
    if isinstance(value, dict):
        where = value.get("field") or value.get("path") or value.get("loc")
        where = ".".join(str(p) for p in where if p != "body") if isinstance(where, list) else where
        message = _text(value)
        return f"{where}: {message}" if isinstance(where, str) and where and message else message
    return _text(value)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return _text(value.get("message")) or _text(value.get("detail")) or _text(value.get("msg"))
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, dict) and "msg" in first:
            where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
            return f"{where}: {first['msg']}" if where else str(first["msg"])
        return _text(first)
    return None


def error_code(body: Any) -> str | None:
    """A machine code from an error body (string codes only; numeric codes are statuses)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"])
    for key in ("code", "failCode", "failure_code"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return None


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header: integer seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value) if "," in value else None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - now())


def retry_delay_s(attempt: int, retry_after_s: float | None, *, rng: Callable[[], float] = random.random) -> float:
    """How long to wait before retry number ``attempt + 1``: Retry-After if given, else jittered backoff."""
    if retry_after_s is not None:
        return min(retry_after_s, MAX_RETRY_AFTER_S)
    backoff = min(MAX_RETRY_DELAY_S, INITIAL_RETRY_DELAY_S * float(2**attempt))
    return backoff * (0.5 + rng() / 2)
