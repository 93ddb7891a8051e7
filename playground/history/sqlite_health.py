"""When the history file cannot be used: one sentence naming the file and what to do, never a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from playground.errors import StoreError

BUSY_TIMEOUT_MS = 2_000  # another process writing: wait this long for the lock, then fail that write with a sentence


def ensure_data_dir(data_dir: Path | str) -> Path:
    """The data folder, created if needed; StoreError with one sentence when it is a file or cannot be made."""
    root = Path(data_dir)
    if root.exists() and not root.is_dir():
        raise StoreError(
            f"The data folder {root} is a file, not a folder: move the file away, or point PLAYGROUND_DATA_DIR "
            "at a folder."
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"The data folder {root} cannot be created ({exc.strerror or exc}): point PLAYGROUND_DATA_DIR at a "
            "folder you can write to."
        ) from None
    return root


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """The sentence for a database error: locked (wait or close the other program), or unusable (move it away)."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreError(
            f"The history file {path} is locked by another program (waited {BUSY_TIMEOUT_MS / 1000:g} s); "
            "nothing was sent: close that program or try again in a moment."
        )
    if any(word in text for word in ("readonly", "unable to open", "disk i/o", "full")):
        return StoreError(
            f"The history file {path} cannot be written ({exc}): check its permissions and free space, or point "
            "PLAYGROUND_DATA_DIR at another folder."
        )
    return StoreError(
        f"The history file {path} is not a usable SQLite database ({exc}): move it away (a new one is then "
        "started) or point PLAYGROUND_DATA_DIR at another folder."
    )
