"""The real transport (aiohttp under httpx) against real loopback servers: what goes out, and what errors say."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp.connector
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from playground.errors import ProviderConnectionError, ProviderTimeoutError, ProviderUnavailableError
from playground.http import MAX_RETRIES, USER_AGENT, HttpClient, build_client
from playground.sandbox.server import LoopbackServer
from playground.transport import KEEPALIVE_EXPIRY_S

SECONDS = 5.0  # an http timeout no fast test reaches


def demo(client: httpx.AsyncClient, sleeps: list[float] | None = None) -> HttpClient:
    """Demo's HttpClient on ``client``; it records each retry delay in ``sleeps`` instead of sleeping."""
    delays = [] if sleeps is None else sleeps

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return HttpClient(client, provider="demo", label="Demo", sleep=sleep)


# -- a uvicorn server for normal answers, counting what it was sent ------------------------------------------------


def answers_app(seen: list[Request]) -> Starlette:
    def record(request: Request) -> None:
        seen.append(request)

    async def echo(request: Request) -> Response:
        record(request)
        return JSONResponse({"port": request.client.port if request.client else None})

    async def boom(request: Request) -> Response:
        record(request)
        return JSONResponse({"message": "boom"}, status_code=500)

    async def busy(request: Request) -> Response:
        record(request)
        if sum(r.url.path == "/busy" for r in seen) == 1:
            return JSONResponse({"msg": "slow down"}, status_code=429, headers={"Retry-After": "2"})
        return JSONResponse({"ok": 1})

    async def moved(request: Request) -> Response:
        record(request)
        return RedirectResponse("/echo", status_code=302)

    async def sticky(request: Request) -> Response:
        record(request)
        response = JSONResponse({"ok": 1})
        response.set_cookie("lb", "node-7")  # a load balancer's affinity cookie
        return response

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/boom", boom, methods=["POST"]),
            Route("/busy", busy),
            Route("/old", moved),
            Route("/sticky", sticky),
        ]
    )


@pytest.fixture(scope="module")
def answering() -> Iterator[tuple[str, list[Request]]]:
    seen: list[Request] = []
    with LoopbackServer(answers_app(seen)) as server:
        yield server.url, seen


@pytest.fixture
def server(answering: tuple[str, list[Request]]) -> tuple[str, list[Request]]:
    url, seen = answering
    seen.clear()
    return url, seen


# -- a raw socket server for answers no HTTP server gives ------------------------------------------------------------


class RawServer:
    """A loopback TCP server that reads each request, then hangs up, stays silent, answers garbage or cuts short.

    ``stall`` reads only the head and never the body, so a large upload fills the socket buffers and stops.
    """

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self._done = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        self._done.set()
        for writer in self._writers:
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            if self.behaviour != "stall":
                await reader.readexactly(_content_length(head))
            if self.behaviour == "garbage":
                writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            if self.behaviour == "cut short":
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id"')
            if self.behaviour in ("silent", "stall"):
                await self._done.wait()
            writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass


def _content_length(head: bytes) -> int:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value)
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_client(SECONDS) as real:
        yield real


# -- a create is sent exactly once ---------------------------------------------------------------------------------


async def test_does_not_retry_create_on_500(client, server):
    url, seen = server
    with pytest.raises(ProviderUnavailableError, match=r"HTTP 500\): boom"):
        await demo(client).create("POST", f"{url}/boom", json={})
    assert [r.url.path for r in seen] == ["/boom"]


async def test_a_dropped_connection_on_create_is_sent_once_and_says_the_job_may_exist(client):
    async with RawServer("hang up") as raw:
        with pytest.raises(ProviderConnectionError, match=r"dropped the connection.*may have been created") as caught:
            await demo(client).create("POST", f"{raw.url}/jobs", json={"prompt": "a cat"})
    assert raw.requests == 1
    assert "nothing was sent" not in str(caught.value)


async def test_a_read_timeout_on_create_is_sent_once_and_says_the_job_may_exist():
    async with build_client(0.2) as client, RawServer("silent") as raw:
        with pytest.raises(ProviderTimeoutError, match=r"did not answer in time\. The job may have been created"):
            await demo(client).create("POST", f"{raw.url}/jobs", json={})
    assert raw.requests == 1


async def test_a_malformed_answer_on_create_is_a_dropped_connection_not_an_aiohttp_error(client):
    async with RawServer("garbage") as raw:
        with pytest.raises(ProviderConnectionError, match=r"\(RemoteProtocolError\).*may have been created"):
            await demo(client).create("POST", f"{raw.url}/jobs", json={})
    assert raw.requests == 1


async def test_an_answer_cut_short_on_create_is_a_dropped_connection(client):
    async with RawServer("cut short") as raw:
        with pytest.raises(ProviderConnectionError, match=r"\(RemoteProtocolError\).*may have been created"):
            await demo(client).create("POST", f"{raw.url}/jobs", json={})
    assert raw.requests == 1


async def test_a_stalled_upload_times_out_instead_of_hanging(client):
    body = b"x" * (32 * 1024 * 1024)  # more than the loopback socket buffers hold
    async with RawServer("stall") as raw, asyncio.timeout(3):
        with pytest.raises(ProviderTimeoutError, match="may have been created") as caught:
            await demo(client).create("POST", f"{raw.url}/jobs", content=body, timeout=httpx.Timeout(0.1))
    assert isinstance(caught.value.__cause__, httpx.WriteTimeout)
    assert raw.requests == 1


# -- no connection: nothing was sent ---------------------------------------------------------------------------------


async def test_a_refused_connection_says_nothing_was_sent(client):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderConnectionError, match=rf"reached at {url} \(ConnectError\); nothing was sent"):
        await demo(client).create("POST", f"{url}/jobs", json={})


async def test_a_dns_failure_says_nothing_was_sent(client, monkeypatch):
    async def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_host)  # aiohttp's ThreadedResolver asks it
    with pytest.raises(ProviderConnectionError, match=r"\(ConnectError\); nothing was sent") as caught:
        await demo(client).create("POST", "http://demo.invalid/jobs", json={})
    assert isinstance(caught.value.__cause__.__cause__, aiohttp.ClientConnectorDNSError)


async def test_a_connect_timeout_says_nothing_was_sent(client):
    with socket.socket() as listener:  # a full accept queue: the kernel drops further SYNs, so connect hangs
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            with pytest.raises(ProviderConnectionError, match=r"\(ConnectTimeout\); nothing was sent"):
                timeout = httpx.Timeout(1.0, connect=0.1)
                await demo(client).create("POST", f"http://127.0.0.1:{port}/jobs", json={}, timeout=timeout)
        finally:
            for filler in fillers:
                filler.close()


# -- reads are retried, by us alone ----------------------------------------------------------------------------------


async def test_fetch_waits_out_429_retry_after_then_succeeds(client, server):
    url, seen = server
    sleeps: list[float] = []
    response = await demo(client, sleeps).fetch("GET", f"{url}/busy")
    assert response.json() == {"ok": 1}
    assert sleeps == [2.0]
    assert len(seen) == 2


async def test_fetch_retries_a_dropped_connection_and_aiohttp_does_not_resend_behind_our_back(client):
    sleeps: list[float] = []
    async with RawServer("hang up") as raw:
        with pytest.raises(ProviderConnectionError, match="dropped the connection"):
            await demo(client, sleeps).fetch("GET", f"{raw.url}/status")
    assert raw.requests == MAX_RETRIES + 1
    assert len(sleeps) == MAX_RETRIES


# -- the pool, redirects, headers ------------------------------------------------------------------------------------


async def test_idle_connections_are_not_reused_after_the_keepalive_expiry(client, server, monkeypatch):
    url, _ = server
    now = [1000.0]
    monkeypatch.setattr(aiohttp.connector, "monotonic", lambda: now[0])  # the clock aiohttp's pool ages conns by

    async def port() -> int:
        return int((await client.get(f"{url}/echo")).json()["port"])

    first = await port()
    now[0] += KEEPALIVE_EXPIRY_S - 0.5
    assert await port() == first  # still fresh: reused
    now[0] += KEEPALIVE_EXPIRY_S + 0.5
    assert await port() != first  # idle past the expiry: a new connection
    assert KEEPALIVE_EXPIRY_S < uvicorn.Config(answers_app([])).timeout_keep_alive


async def test_redirects_are_followed(client, server):
    url, seen = server
    response = await demo(client).fetch("GET", f"{url}/old")
    assert response.url.path == "/echo" and response.history[0].status_code == 302
    assert [r.url.path for r in seen] == ["/old", "/echo"]


async def test_our_user_agent_is_sent_and_aiohttps_is_not(client, server):
    url, seen = server
    await demo(client).create("POST", f"{url}/echo", json={})
    assert seen[0].headers.getlist("user-agent") == [USER_AGENT]


async def test_no_cookie_a_provider_sets_is_kept_or_sent_back(client, server):
    url, seen = server
    http = demo(client)
    first = await http.fetch("GET", f"{url}/sticky")
    assert first.headers["set-cookie"].startswith("lb=node-7"), "the server did set one"
    await http.fetch("GET", f"{url}/sticky")
    await http.create("POST", f"{url}/echo", json={})
    assert [r.headers.get("cookie") for r in seen] == [None, None, None]
    assert not client.cookies
