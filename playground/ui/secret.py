"""The secret that encrypts visitors' keys in their browsers: fixed, so saved keys survive a restart."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

SECRET_ENV = "PLAYGROUND_BROWSER_SECRET"
SECRET_FILE = "browser-secret"
SECRET_BYTES = 32


def browser_secret(data_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """PLAYGROUND_BROWSER_SECRET, else a random value kept in ``data_dir`` (created once, owner-only)."""
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV, "").strip():
        return env[SECRET_ENV].strip()
    path = data_dir / SECRET_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value
