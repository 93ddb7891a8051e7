"""Links to kept results that any replica can serve: ``<base>/results/<token>/<file name>``.

The token carries the result's ref (a path, or ``s3://...``) and an HMAC of it under the app's secret, so a link
cannot be guessed or pointed at another file, and every replica sharing the secret can verify it and read the
bytes through the storage interface. Used by the API endpoints, whose callers fetch images over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import PurePosixPath

SIGNATURE_BYTES = 16


class ResultLinks:
    """Makes and checks result links; ``base_url`` is the app's address once it is known."""

    def __init__(self, secret: str, base_url: str = "http://127.0.0.1") -> None:
        self._key = hashlib.sha256(b"result-links:" + secret.encode()).digest()
        self.base_url = base_url.rstrip("/")

    def url(self, ref: str) -> str:
        """The link that serves ``ref``."""
        return f"{self.base_url}/results/{self.token(ref)}/{PurePosixPath(ref).name}"

    def token(self, ref: str) -> str:
        encoded = base64.urlsafe_b64encode(ref.encode()).decode().rstrip("=")
        return f"{encoded}.{self._sign(ref)}"

    def ref_of(self, token: str) -> str | None:
        """The ref a token names, or None when it was not made with our secret."""
        encoded, _, signature = token.partition(".")
        try:
            ref = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return ref if hmac.compare_digest(signature, self._sign(ref)) else None

    def _sign(self, ref: str) -> str:
        digest = hmac.new(self._key, ref.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
