"""Serve a local input image at an unguessable, expiring URL, for providers that have no upload API."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from playground.images import EXTENSIONS
from playground.models import InputImage

INPUT_TTL_S = 3600.0  # long enough for a queued job to fetch its input, short enough not to become a CDN
TOKEN_BYTES = 24


@dataclass(frozen=True)
class _Hosted:
    content: bytes
    mime_type: str
    expires_at: float


class InputHost:
    """Holds uploaded inputs in memory and hands out ``<public_base_url>/inputs/<token>.<ext>`` URLs."""

    def __init__(self, public_base_url: str, *, ttl_s: float = INPUT_TTL_S, clock: Callable[[], float] = time.time):
        self.public_base_url = public_base_url.rstrip("/")
        self._ttl_s = ttl_s
        self._clock = clock
        self._files: dict[str, _Hosted] = {}
        self._lock = threading.Lock()

    def publish(self, image: InputImage) -> InputImage:
        """The same image, now as a URL a provider can fetch."""
        assert image.content is not None and image.mime_type is not None
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            self._drop_expired()
            self._files[token] = _Hosted(image.content, image.mime_type, self._clock() + self._ttl_s)
        ext = EXTENSIONS.get(image.mime_type, "bin")
        return image.model_copy(update={"url": f"{self.public_base_url}/inputs/{token}.{ext}", "content": None})

    def lookup(self, name: str) -> tuple[bytes, str] | None:
        """The bytes and type for ``<token>.<ext>``, or None when unknown or expired."""
        token = name.split(".", 1)[0]
        with self._lock:
            hosted = self._files.get(token)
            if hosted is None or hosted.expires_at < self._clock():
                return None
            return hosted.content, hosted.mime_type

    def _drop_expired(self) -> None:
        now = self._clock()
        for token in [t for t, h in self._files.items() if h.expires_at < now]:
            del self._files[token]
