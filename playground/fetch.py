"""Fetching a user-supplied URL ourselves (previews): http(s) only, public addresses only, 10 MB at most."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx

from playground.errors import InvalidInputError
from playground.images import MAX_INPUT_BYTES, image_from_bytes
from playground.models import InputImage

MAX_REDIRECTS = 3
FETCH_TIMEOUT_S = 15.0


LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def local_address(url: str) -> str | None:
    """The host of ``url`` when it is written as a private, loopback or link-local address (or 'localhost').

    Only what the URL itself says: names are not resolved here. check_public_url resolves them, for the URLs
    the app fetches itself.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if address.is_global else str(address)


async def check_public_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), or whose host resolves to a private, loopback or link-local address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"Only http(s) image URLs are accepted, not {url[:80]!r}.")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidInputError(f"The host of {url[:80]} could not be resolved.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidInputError(
                f"The image URL {url[:80]} points at a private or local address ({address}); "
                "use a public URL (or set PLAYGROUND_ALLOW_PRIVATE_URLS=1 for local testing)."
            )


async def fetch_user_image(client: httpx.AsyncClient, url: str, *, allow_private: bool) -> InputImage:
    """Download a user's image URL safely: every redirect is re-checked, the body is capped at 10 MB."""
    for _ in range(MAX_REDIRECTS + 1):
        await check_public_url(url, allow_private=allow_private)
        try:
            image = await _fetch_once(client, url)
        except httpx.HTTPError as exc:
            raise InvalidInputError(f"The image URL {url[:80]} could not be fetched ({type(exc).__name__}).") from exc
        if isinstance(image, str):
            url = image
            continue
        return image
    raise InvalidInputError(f"The image URL {url[:80]} redirects more than {MAX_REDIRECTS} times.")


async def _fetch_once(client: httpx.AsyncClient, url: str) -> InputImage | str:
    """The image at ``url``, or the URL it redirects to."""
    async with client.stream("GET", url, follow_redirects=False, timeout=FETCH_TIMEOUT_S) as response:
        if response.is_redirect and "location" in response.headers:
            return urljoin(url, response.headers["location"])
        if response.is_error:
            raise InvalidInputError(f"The image URL {url[:80]} answered HTTP {response.status_code}.")
        content = await _read_capped(response, url)
    image = image_from_bytes(content, urlsplit(url).path.rsplit("/", 1)[-1] or "image")
    return image.model_copy(update={"url": url})


async def _read_capped(response: httpx.Response, url: str) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise InvalidInputError(f"The image at {url[:80]} is larger than 10 MB.")
        chunks.append(chunk)
    return b"".join(chunks)
