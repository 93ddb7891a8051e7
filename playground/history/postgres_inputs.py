"""Local input images in the PostgreSQL history: one row per content, and a local copy for the page.

The SQLite store keeps such inputs as files in its data dir; here they are rows (``inputs``), so every replica
can re-run any run, and ``local_input`` writes a copy under ``<data_dir>/inputs/`` for the UI's 'before' image.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from playground.images import EXTENSIONS
from playground.models import GenerationRequest

if TYPE_CHECKING:
    from playground.history.postgres import PostgresHistory

INPUTS_DIR = "inputs"


async def request_data(db: psycopg.AsyncConnection[Any], request: GenerationRequest) -> dict[str, Any]:
    """The request as stored: a local input kept once as a row, and named by its content (never inline)."""
    data = request.model_dump(mode="json", exclude={"image": {"content"}})
    image = request.image
    if image is not None and image.content is not None:
        digest = hashlib.sha256(image.content).hexdigest()
        ext = EXTENSIONS.get(image.mime_type or "") or Path(image.filename).suffix.lstrip(".").lower() or "bin"
        await db.execute(
            "INSERT INTO inputs (sha256, mime_type, content) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (digest, image.mime_type, image.content),
        )
        data["image"]["path"] = f"{INPUTS_DIR}/{digest}.{ext}"
    return data


async def input_bytes(store: PostgresHistory, path: str) -> bytes | None:
    """The bytes of a stored input (``inputs/<sha256>.<ext>``), or None when the row is gone."""
    rows = await store.fetch("SELECT content FROM inputs WHERE sha256 = %s", (Path(path).stem,))
    return bytes(rows[0]["content"]) if rows else None


async def local_input(store: PostgresHistory, path: str) -> Path | None:
    """The input's local copy (written once, whole), for the UI's 'before' image."""
    from playground.storage import write_atomically  # storage reads history records: imported late

    local = store.data_dir / path
    if local.is_file():
        return local
    content = await input_bytes(store, path)
    if content is None:
        return None
    await asyncio.to_thread(write_atomically, local, content)
    return local
