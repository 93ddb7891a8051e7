"""The transport under every request: httpx's API over aiohttp's connection pool, with our safety rules.

* Errors arrive as the httpx classes httpcore would raise for the same event (see AIOHTTP_ERRORS), so
  "nothing was sent" and "the job may exist" stay true.
* Credentials never follow a redirect to another origin: httpx drops only ``Authorization``; the client
  here drops every header that carries a key (BFL's ``x-key`` included).
* A guarded client (``build_client(..., guarded=True)``) connects only to public addresses: literal hosts are
  checked before each request and hop, names when aiohttp resolves them (playground.addresses).
* Proxies from the environment (HTTPS_PROXY, NO_PROXY) are honoured, as httpx's own transports do.
* No cookies are kept: provider APIs authenticate with keys, never with a session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from playground.addresses import GuardedResolver, refuse_local_literal

CONNECT_TIMEOUT_S = 10.0
# Expire idle connections before servers usually do (uvicorn: 5 s): a create POST sent on a connection the
# server is closing fails, and creates are never retried.
KEEPALIVE_EXPIRY_S = 4.0
USER_AGENT = "flux-kontext-playground/0.1"
# Headers that carry a provider key, lower-case: Authorization (Bearer, Key), BFL's x-key, and the usual others.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-key", "x-api-key", "api-key", "key"})


def build_client(
    timeout_s: float, transport: httpx.AsyncBaseTransport | None = None, *, guarded: bool = False
) -> httpx.AsyncClient:
    """An AsyncClient with our timeouts over aiohttp's connection pool; ``transport`` is the test seam.

    ``guarded``: connect only to public addresses (for URLs a visitor or a provider's answer names).
    """
    return KeyGuardClient(
        guarded=guarded,
        timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
        transport=transport,
        follow_redirects=True,
        headers={"user-agent": USER_AGENT},
        event_hooks={"request": [_refuse_local_literal]} if guarded else None,
    )


async def _refuse_local_literal(request: httpx.Request) -> None:
    refuse_local_literal(request.url)  # runs for the first request and for every redirect hop


class KeyGuardClient(httpx.AsyncClient):
    """httpx's client over AiohttpPoolTransport, dropping every credential header (not just Authorization) on a
    cross-origin redirect. Proxies from the environment are httpx's own (HTTPS_PROXY, NO_PROXY: a transport
    per proxy, as httpx-aiohttp's client makes them), unless a transport is given (the test seam)."""

    def __init__(self, *, guarded: bool = False, **kw: Any) -> None:
        self._guarded = guarded  # read by _init_transport, which httpx calls from its constructor
        super().__init__(**kw)
        self._cookies = NoCookies()  # httpx 0.28 (pinned) keeps the client's jar here and reads it per request

    def _init_transport(self, *args: Any, transport: httpx.AsyncBaseTransport | None = None, **kw: Any) -> Any:
        return transport if transport is not None else AiohttpPoolTransport(guarded=self._guarded)

    def _init_proxy_transport(self, proxy: httpx.Proxy, *args: Any, **kw: Any) -> Any:
        # Through a proxy the proxy resolves the host: the literal check (the request hook) still applies.
        return AiohttpPoolTransport(proxy=proxy)

    def _redirect_headers(self, request: httpx.Request, url: httpx.URL, method: str) -> httpx.Headers:
        # httpx 0.28 (pinned) builds each hop's headers here; it keeps x-key and friends across origins.
        headers = super()._redirect_headers(request, url, method)
        if (url.scheme, url.host, url.port) != (request.url.scheme, request.url.host, request.url.port):
            for name in CREDENTIAL_HEADERS:
                headers.pop(name, None)
        return headers


class NoCookies(httpx.Cookies):
    """A jar that keeps nothing: no provider API needs cookies, so one provider's Set-Cookie (a load balancer's,
    say) is never sent back, and no answer pays for httpx parsing its headers as a browser would (~35 us each)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


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
    """httpx-aiohttp's transport with our pool rules and httpcore's error classes.

    httpcore's pool spends O(connections) per request event, which dominates CPU at ~1,000 concurrent jobs.
    """

    def __init__(
        self, keepalive_expiry_s: float = KEEPALIVE_EXPIRY_S, *, guarded: bool = False, proxy: httpx.Proxy | None = None
    ) -> None:
        limits = httpx.Limits(max_connections=None, keepalive_expiry=keepalive_expiry_s)
        super().__init__(limits=limits, proxy=proxy)
        self.guarded = guarded

    def get_client(self) -> aiohttp.ClientSession:
        # limit=0: no cap, as httpx had (httpx-aiohttp turns max_connections=None into aiohttp's cap of 100).
        resolver = GuardedResolver() if self.guarded else None  # made here: aiohttp's resolver wants the loop
        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context, resolver=resolver
        )
        # The client keeps no cookies (NoCookies), and aiohttp must not either. No trust_env: httpx
        # picks proxies (see KeyGuardClient), and aiohttp's would read ~/.netrc on every request.
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
