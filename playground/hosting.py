"""Serve a local input image at an unguessable, expiring URL, for providers that have no upload API.

The bytes live in an ``InputStore``: on disk under the data dir for the app (``DiskInputStore``: they survive a
restart, so a resumed job's provider can still fetch its input), in memory otherwise. Either way every input
expires (INPUT_TTL_S) and the store holds at most MAX_HOSTED_BYTES and MAX_HOSTED_FILES, the oldest going first.
Another store (object storage, say) implements the same three methods.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from playground.images import EXTENSIONS
from playground.models import InputImage

INPUT_TTL_S = 3600.0  # long enough for a queued job to fetch its input, short enough not to become a CDN
TOKEN_BYTES = 24
MAX_HOSTED_BYTES = 256 * 1024 * 1024
MAX_HOSTED_FILES = 1000
HOSTED_DIR = "hosted"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_MIME_BY_EXT = {ext: mime for mime, ext in EXTENSIONS.items()}


@dataclass(frozen=True)
class Hosted:
    """One hosted input: its bytes, their type, and when it stops being served (Unix seconds)."""

    content: bytes
    mime_type: str
    expires_at: float


class InputStore(Protocol):
    """Where hosted inputs are kept, by token. Implementations drop expired entries and keep within their cap."""

    def put(self, token: str, hosted: Hosted, now: float) -> None:
        """Keep ``hosted`` under ``token`` (making room by dropping expired, then oldest, entries)."""
        ...

    def get(self, token: str, now: float) -> Hosted | None:
        """The entry for ``token``, or None when unknown or expired."""
        ...


class MemoryInputStore:
    """Hosted inputs in this process's memory (the CLI's own short-lived host, tests)."""

    def __init__(self, *, max_bytes: int = MAX_HOSTED_BYTES, max_files: int = MAX_HOSTED_FILES) -> None:
        self._entries: dict[str, Hosted] = {}
        self._max_bytes, self._max_files = max_bytes, max_files

    def put(self, token: str, hosted: Hosted, now: float) -> None:
        entries = {t: h for t, h in self._entries.items() if h.expires_at >= now}
        for old in sorted(entries, key=lambda t: entries[t].expires_at):
            if len(entries) < self._max_files and _size(entries) + len(hosted.content) <= self._max_bytes:
                break
            del entries[old]
        self._entries = entries | {token: hosted}

    def get(self, token: str, now: float) -> Hosted | None:
        hosted = self._entries.get(token)
        return hosted if hosted is not None and hosted.expires_at >= now else None


class DiskInputStore:
    """Hosted inputs as files ``<token>.<expires_at>.<ext>`` in one folder (written whole, then renamed)."""

    def __init__(self, folder: Path, *, max_bytes: int = MAX_HOSTED_BYTES, max_files: int = MAX_HOSTED_FILES):
        self.folder = folder
        self._max_bytes, self._max_files = max_bytes, max_files

    def put(self, token: str, hosted: Hosted, now: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._make_room(len(hosted.content), now)
        ext = EXTENSIONS.get(hosted.mime_type, "bin")
        path = self.folder / f"{token}.{int(hosted.expires_at)}.{ext}"
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(hosted.content)
        os.replace(tmp, path)

    def get(self, token: str, now: float) -> Hosted | None:
        if not _TOKEN.match(token):
            return None  # never a path: a token is url-safe base64
        for path in self.folder.glob(f"{token}.*.*"):
            _, expires, ext = path.name.split(".")
            if int(expires) < now:
                path.unlink(missing_ok=True)
                return None
            return Hosted(path.read_bytes(), _MIME_BY_EXT.get(ext, "application/octet-stream"), float(expires))
        return None

    def _make_room(self, incoming: int, now: float) -> None:
        kept: list[tuple[int, int, Path]] = []
        for path in self.folder.glob("*.*.*"):
            try:
                expires, size = int(path.name.split(".")[1]), path.stat().st_size
            except (ValueError, IndexError, OSError):
                continue
            if expires < now:
                path.unlink(missing_ok=True)
            else:
                kept.append((expires, size, path))
        kept.sort()
        total = sum(size for _, size, _ in kept)
        while kept and (len(kept) >= self._max_files or total + incoming > self._max_bytes):
            _, size, path = kept.pop(0)  # the one that would expire first goes first
            path.unlink(missing_ok=True)
            total -= size


class InputHost:
    """Hands out ``<public_base_url>/inputs/<token>.<ext>`` URLs for local inputs kept in ``store``."""

    def __init__(
        self,
        public_base_url: str,
        *,
        store: InputStore | None = None,
        ttl_s: float = INPUT_TTL_S,
        clock: Callable[[], float] = time.time,
    ):
        self.public_base_url = public_base_url.rstrip("/")
        self.store: InputStore = store if store is not None else MemoryInputStore()
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()

    def publish(self, image: InputImage) -> InputImage:
        """The same image, now as a URL a provider can fetch (one file written: quick enough for the event loop)."""
        assert image.content is not None and image.mime_type is not None
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        with self._lock:
            self.store.put(token, Hosted(image.content, image.mime_type, now + self._ttl_s), now)
        ext = EXTENSIONS.get(image.mime_type, "bin")
        return image.model_copy(update={"url": f"{self.public_base_url}/inputs/{token}.{ext}", "content": None})

    def lookup(self, name: str) -> tuple[bytes, str] | None:
        """The bytes and type for ``<token>.<ext>``, or None when unknown or expired."""
        token = name.split(".", 1)[0]
        with self._lock:
            hosted = self.store.get(token, self._clock())
        return None if hosted is None else (hosted.content, hosted.mime_type)


def _size(entries: dict[str, Hosted]) -> int:
    return sum(len(h.content) for h in entries.values())
