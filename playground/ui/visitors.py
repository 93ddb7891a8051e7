"""Who is asking: the local user, a password holder, or a stranger (a share link, another machine).

The server's keys are spent, and private input URLs used, only for the first two (or for everyone, when the
operator says so with PLAYGROUND_SHARE_SERVER_KEYS=1). A request is the local user's when the page has no
share link and the request comes straight from this machine: a loopback client address and no proxy headers
(behind a reverse proxy on the same machine every visitor would look local, so a forwarded request never is).
No gradio here: a request is anything with ``client.host`` and ``headers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playground.addresses import literal_address

SERVER_NAME_ENV = "GRADIO_SERVER_NAME"
DEFAULT_SERVER_NAME = "127.0.0.1"
FORWARDING_HEADERS = ("x-forwarded-for", "x-forwarded-host", "forwarded", "x-real-ip")


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (an address or 'localhost') is this machine's loopback."""
    if host is None:
        return False
    if host.strip("[]").lower() in ("localhost", "localhost."):
        return True
    address = literal_address(host)
    if address is not None and getattr(address, "ipv4_mapped", None) is not None:
        address = address.ipv4_mapped  # type: ignore[union-attr]
    return address is not None and address.is_loopback


def listens_beyond_loopback(environ: Mapping[str, str]) -> bool:
    """Whether the page listens where other machines reach it (GRADIO_SERVER_NAME=0.0.0.0, say)."""
    return not is_loopback_host(environ.get(SERVER_NAME_ENV, "").strip() or DEFAULT_SERVER_NAME)


def is_local_request(request: Any) -> bool:
    """Whether a request comes straight from this machine (loopback client, no forwarding headers)."""
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    if any(name in headers for name in FORWARDING_HEADERS):
        return False
    return is_loopback_host(getattr(client, "host", None))
