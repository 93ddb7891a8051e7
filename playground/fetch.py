"""Fetching a URL ourselves (a visitor's input for the preview): http(s) only, public addresses only, capped.

Every hop of a redirect is checked again (playground.addresses); without ``allow_private`` the request goes
through a guarded client, which also refuses a name that resolves to a private address at connection time.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import httpx

from playground.addresses import AddressRefusedError, check_url, refusal
from playground.errors import InvalidInputError
from playground.http import refused_address
from playground.images import MAX_INPUT_BYTES, image_from_bytes
from playground.models import InputImage

MAX_REDIRECTS = 3
FETCH_TIMEOUT_S = 15.0

__all__ = ["check_public_url", "fetch_user_image"]


async def check_public_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL we are about to fetch unless it is http(s) on a public address (names are resolved)."""
    await check_url(url, allow_private=allow_private, must_resolve=True)


async def fetch_user_image(client: httpx.AsyncClient, url: str, *, allow_private: bool) -> InputImage:
    """Download a user's image URL safely: every redirect is re-checked, the body is capped at 10 MB.

    Without ``allow_private``, ``client`` should be a guarded one (``GenerationService.public_client``).
    """
    for _ in range(MAX_REDIRECTS + 1):
        await check_public_url(url, allow_private=allow_private)
        try:
            image = await _fetch_once(client, url)
        except (httpx.HTTPError, AddressRefusedError) as exc:
            if refused_address(exc):
                raise refusal(url) from None
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
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_INPUT_BYTES:
        raise InvalidInputError(f"The image at {url[:80]} is larger than 10 MB.")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise InvalidInputError(f"The image at {url[:80]} is larger than 10 MB.")
        chunks.append(chunk)
    return b"".join(chunks)
