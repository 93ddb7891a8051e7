"""Sealing visitors' keys with a key only the server holds: the browser keeps ciphertext it cannot open.

The page's browser storage (Gradio's BrowserState) is encrypted with a secret that Gradio sends to every page,
so it protects nothing from whoever loads the page. What the browser stores is therefore already sealed here
(Fernet: AES-128-CBC with an HMAC-SHA256 tag) under a key derived from PLAYGROUND_BROWSER_SECRET, which never
leaves the server. A stolen stored value opens nothing: it is only usable through this server, for runs.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "sealed:v1:"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())


class Vault:
    """Seals and opens JSON values with a key derived from the server's secret."""

    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"flux-kontext-playground visitor keys")))
        # What Gradio's BrowserState may publish to every page: derived one way, so it tells nothing of ``secret``.
        self.storage_secret = _derive(secret, b"flux-kontext-playground browser storage").hex()

    def seal(self, value: Any) -> str:
        """``value`` as text that only this vault (this server's secret) can open."""
        return SEALED_PREFIX + self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, sealed: object) -> Any | None:
        """The value sealed in ``sealed``; None when it is not ours (another secret, tampered, not sealed)."""
        if not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
            return None
        try:
            return json.loads(self._fernet.decrypt(sealed.removeprefix(SEALED_PREFIX).encode()))
        except (InvalidToken, ValueError):
            return None
