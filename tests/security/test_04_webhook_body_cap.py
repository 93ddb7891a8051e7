"""Finding 4 (and acceptance 4): webhook bodies had no size cap; a 300 MB body took the app from 194 to 1028 MB."""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit

from playground.settings import DEFAULT_WEBHOOK_MAX_BYTES
from tests.security.conftest import rss_kb

CHUNK = 64 * 1024  # one read buffer
BODY_BYTES = 300 * 1024 * 1024


async def test_the_app_reads_no_more_than_the_cap_plus_one_chunk_of_a_300_mb_body(shared_app):
    """The app's own ASGI stack (Gradio's middleware and our route), fed one chunk at a time: count the reads."""
    app = shared_app.started.page.demo.app
    read, sent = [0], []

    async def receive() -> dict[str, object]:
        read[0] += CHUNK
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": read[0] < BODY_BYTES}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/fluxapi",
        "raw_path": b"/webhooks/fluxapi",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],  # no length: chunked
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert read[0] <= DEFAULT_WEBHOOK_MAX_BYTES + CHUNK, f"read {read[0]} bytes"


def test_a_300_mb_streamed_body_is_refused_and_the_app_grows_less_than_50_mb(shared_app):
    """Through the app's server and a real socket: the body streamed, chunked, as an attacker would send it."""
    before = rss_kb()
    status, sent_when_answered = stream_body(shared_app.url, "/webhooks/fluxapi", BODY_BYTES)
    grown_mb = (rss_kb() - before) / 1024
    assert status == 413
    assert grown_mb < 50, f"the app grew {grown_mb:.0f} MB"
    print(f"413 after {sent_when_answered / 1e6:.1f} MB sent (socket buffers included); RSS +{grown_mb:.1f} MB")


def stream_body(base_url: str, path: str, total: int) -> tuple[int, int]:
    """POST ``total`` bytes chunked; (the status answered, bytes sent when the answer arrived)."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        pending, sent, answered_at, answer = memoryview(chunk), 0, 0, b""
        deadline = time.monotonic() + 120
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable and not answer:
                answer, answered_at = sock.recv(4096), sent
            if writable:
                try:
                    written = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break  # the server hung up: nothing more of the body is read either way
                sent, pending = sent + written, pending[written:] or memoryview(chunk)
        if not answer:
            answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1]), answered_at or sent
