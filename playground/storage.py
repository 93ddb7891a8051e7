"""Where result images are kept: a local folder (default) or an S3-compatible bucket, behind one interface.

A stored result has a ``ref`` (what the history keeps: a file path, or ``s3://bucket/key``) and a local copy the
page can show. Originals keep their bytes and format: nothing is re-encoded on the way in or out.

The S3 store (``PLAYGROUND_STORAGE_URL=s3://bucket/prefix``, through obstore) writes every result to the bucket
and keeps a local copy under the output folder, so the page shows it at once; another replica, or this one after
its disk was wiped, fetches the copy from the bucket when it opens the run. Endpoint and credentials come from
the usual variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ALLOW_HTTP=true
for an http:// endpoint such as a local MinIO).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from playground.history.records import RunRecord
from playground.settings import Settings

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class StoredFile:
    """A kept result: what the history remembers (``ref``) and a local file with the same bytes (``path``)."""

    ref: str
    path: Path


class Storage(Protocol):
    """Keeps result files and gives them back, bytes unchanged."""

    def describe(self) -> str:
        """Where files go, for a log line."""
        ...

    async def put(self, key: str, content: bytes, mime_type: str) -> StoredFile:
        """Keep ``content`` under ``key`` (``<run>/<provider>-<model>.<ext>``); written whole or not at all."""
        ...

    async def local_copy(self, ref: str) -> Path | None:
        """A local file with the bytes ``ref`` names (fetched if need be), or None if they are gone."""
        ...


def write_atomically(path: Path, content: bytes) -> None:
    """Write-then-rename, so a crash never leaves half a file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_bytes(content)
    os.replace(tmp, path)


class LocalStorage:
    """Results as files under one folder (``PLAYGROUND_OUT_DIR``); the ref is the file's path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"the folder {self.root}"

    async def put(self, key: str, content: bytes, mime_type: str) -> StoredFile:
        path = self.root / key
        await asyncio.to_thread(write_atomically, path, content)
        return StoredFile(str(path), path)

    async def local_copy(self, ref: str) -> Path | None:
        path = Path(ref)
        return path if path.is_file() else None


class S3Storage:
    """Results in a bucket (``s3://bucket/prefix/<key>``), with a local copy of each under ``cache``."""

    def __init__(self, url: str, cache: Path, *, store: Any = None) -> None:
        from obstore.store import S3Store

        self.url = url.rstrip("/")
        self.cache = cache
        self._store = store if store is not None else S3Store.from_url(self.url)

    def describe(self) -> str:
        return f"the bucket {self.url}"

    def ref(self, key: str) -> str:
        return f"{self.url}/{key}"

    def key_of(self, ref: str) -> str | None:
        """The key of a ref in this bucket and prefix, or None for a ref kept elsewhere."""
        head = self.url + "/"
        return ref[len(head) :] if ref.startswith(head) else None

    async def put(self, key: str, content: bytes, mime_type: str) -> StoredFile:
        import obstore

        path = self.cache / key
        await asyncio.to_thread(write_atomically, path, content)
        try:
            # A PUT of the same key is idempotent, so obstore's own retries of a failed upload are safe.
            await obstore.put_async(self._store, key, content, attributes={"Content-Type": mime_type})
        except Exception as exc:  # the bucket is unreachable or refuses: keep the local copy rather than lose it
            log.warning("could not store %s in %s (%s); kept only at %s", key, self.url, exc, path)
            return StoredFile(str(path), path)
        return StoredFile(self.ref(key), path)

    async def local_copy(self, ref: str) -> Path | None:
        key = self.key_of(ref)
        if key is None:
            return await LocalStorage(self.cache).local_copy(ref)  # kept before the bucket was configured
        path = self.cache / key
        if path.is_file():
            return path
        content = await self.read(key)
        if content is None:
            return None
        await asyncio.to_thread(write_atomically, path, content)
        return path

    async def read(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None when the bucket does not have them (or cannot be reached)."""
        import obstore

        try:
            found = await obstore.get_async(self._store, key)
            return bytes(await found.bytes_async())
        except FileNotFoundError:
            return None
        except Exception as exc:  # obstore's errors: unreachable, refused, misconfigured
            log.warning("could not read %s from %s: %s", key, self.url, exc)
            return None


def open_storage(settings: Settings, out_dir: Path | None = None) -> Storage:
    """The storage the settings name: the bucket at PLAYGROUND_STORAGE_URL, else the output folder."""
    root = out_dir or settings.out_dir
    if settings.storage_url and out_dir is None:
        return S3Storage(settings.storage_url, root)
    return LocalStorage(root)


def media_type(path: Path) -> str:
    """The file's media type from its name (results are named by their sniffed format)."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def with_local_results(storage: Storage, record: RunRecord) -> RunRecord:
    """The run with each job's result ref replaced by a local copy the page can show (fetched if need be)."""
    jobs = []
    for job in record.jobs:
        if job.result_path and job.result_path.startswith(S3_SCHEME):
            local = await storage.local_copy(job.result_path)
            job = job.model_copy(update={"result_path": str(local) if local else job.result_path})
        jobs.append(job)
    return record.model_copy(update={"jobs": tuple(jobs)})
