"""The transport under the shared httpx client: aiohttp's connection pool, with httpcore's error classes.

httpcore's pool spends O(connections) per request event, which dominates CPU at ~1,000 concurrent jobs;
httpx stays the API everywhere, this module is all that knows about aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Expire idle connections before servers usually do (uvicorn: 5 s): a create POST sent on a connection the
# server is closing fails, and creates are never retried.
KEEPALIVE_EXPIRY_S = 4.0

# aiohttp error -> the httpx error httpcore raises for the same event; first match wins. httpx-aiohttp 0.2.0 maps
# every ClientConnectionError (refused, DNS, reset, "server disconnected") to ConnectTimeout, which would make a
# create dropped after it was sent read "nothing was sent", and lets a malformed answer escape as an aiohttp error.
AIOHTTP_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS handshake: nothing was sent
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),  # reset by peer, broken pipe
)


class AiohttpPoolTransport(AiohttpTransport):
    """httpx-aiohttp's transport with our pool rules and httpcore's error classes."""

    def __init__(self, keepalive_expiry_s: float = KEEPALIVE_EXPIRY_S) -> None:
        super().__init__(limits=httpx.Limits(max_connections=None, keepalive_expiry=keepalive_expiry_s))

    def get_client(self) -> aiohttp.ClientSession:
        # limit=0: no cap, as httpx had (httpx-aiohttp turns max_connections=None into aiohttp's cap of 100).
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context)
        # httpx keeps the cookies; aiohttp's jar would resend cookies httpx no longer has.
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        # aiohttp silently resends an idempotent request once on a dropped connection; retries are ours to decide.
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _as_httpx_errors():
            deadline = _send_deadline_s(request)
            try:
                async with asyncio.timeout(deadline) as scope:
                    response = await super().handle_async_request(request)
            except TimeoutError:
                if not scope.expired():
                    raise
                raise httpx.WriteTimeout(f"the request was not sent within {deadline:g} s") from None
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream)
        return response


def _send_deadline_s(request: httpx.Request) -> float | None:
    """aiohttp has no write timeout: bound connect + upload + first byte by the sum of httpx's pool, write, read."""
    timeout = request.extensions.get("timeout", {})
    parts = [timeout.get("pool"), timeout.get("write"), timeout.get("read")]
    return None if None in parts else sum(parts)


class _MappedStream(httpx.AsyncByteStream):
    """A response body whose aiohttp errors arrive as httpx errors (see AIOHTTP_ERRORS)."""

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _as_httpx_errors():
            await self._stream.aclose()


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """Re-raise an aiohttp error (raw, or as httpx-aiohttp mapped it) as the httpx error in AIOHTTP_ERRORS."""
    try:
        yield
    except (httpx.TransportError, aiohttp.ClientError) as exc:
        cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
        for source, target in AIOHTTP_ERRORS:
            if isinstance(cause, source):
                raise target(str(cause) or type(cause).__name__) from cause
        raise
