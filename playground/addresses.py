"""One address policy for every URL the playground fetches itself or hands to a provider.

A URL is usable when it is http(s) and its host is, and resolves only to, globally reachable addresses.
Refused: loopback, private, link-local (the cloud metadata address 169.254.169.254), unique-local,
shared (CGNAT), unspecified, multicast and reserved addresses, in every spelling the system resolver
accepts (``2130706433``, ``127.1``, ``0x7f000001``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``) and behind
any name that resolves to one. The check runs on the literal host, on the name's resolution, and again at
connection time (``GuardedResolver``), so a redirect or a name that changes its answer gets no further.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from playground.errors import InvalidInputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str], Awaitable[list[str]]]
"""A host name -> the addresses it resolves to (as text)."""

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# What C's inet_aton reads as an IPv4 address: 1 to 4 parts, each decimal, 0x-hex or 0-octal.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class AddressRefusedError(OSError):
    """A connection to a non-public address was about to be made; raised instead of connecting."""


def literal_address(host: str) -> Address | None:
    """The address ``host`` spells, in any notation the resolver would accept; None when it is a name."""
    text = host.strip().strip("[]").rstrip(".").split("%", 1)[0].lower()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def is_public(address: Address) -> bool:
    """Whether an address is globally reachable (an IPv4-mapped IPv6 address is judged by its IPv4 part)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def local_host(host: str) -> bool:
    """Whether ``host`` is, by its spelling alone, a name or address of this machine or a private network."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in LOCAL_NAMES or name.endswith(".localhost") or not name:
        return True
    address = literal_address(name)
    return address is not None and not is_public(address)


def local_address(url: str) -> str | None:
    """The host of ``url`` when it is written as a local or private address (no resolution), else None."""
    host = urlsplit(url).hostname or ""
    return host if local_host(host) else None


async def system_resolve(host: str) -> list[str]:
    """Every address the system resolver gives for ``host`` (empty when it does not resolve)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def refusal(url: str) -> InvalidInputError:
    """The one sentence for a URL that may not be used; it does not say what the host resolved to."""
    return InvalidInputError(
        f"The image URL {url[:80]} points at a private or local address (or one that does not resolve); "
        "only public http(s) addresses are used: give a public URL, or upload the file."
    )


async def check_url(url: str, *, allow_private: bool, must_resolve: bool, resolve: Resolve = system_resolve) -> None:
    """Refuse (InvalidInputError) a URL that is not http(s), or whose host is or resolves to a non-public address.

    ``must_resolve``: a name that does not resolve is refused too (the playground is about to fetch it); when
    False it passes (a provider elsewhere may resolve it). ``allow_private`` skips the address checks.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"Only http(s) image URLs are accepted, not {url[:80]!r}.")
    if allow_private:
        return
    host = parts.hostname
    if local_host(host):
        raise refusal(url)
    if literal_address(host) is not None:
        return
    found = [literal_address(a) for a in await resolve(host)]
    if any(a is None or not is_public(a) for a in found) or (must_resolve and not found):
        raise refusal(url)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing to hand out any non-public address: checked when the connection is made."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if local_host(host):
            raise AddressRefusedError(f"{host} is not a public address")
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = literal_address(str(result["host"]))
            if address is None or not is_public(address):
                raise AddressRefusedError(f"{host} resolves to an address that is not public")
        return results

    async def close(self) -> None:
        await self._inner.close()


def refuse_local_literal(url: Any) -> None:
    """Raise AddressRefusedError when a URL's host is spelled as a non-public address (aiohttp resolves no literal)."""
    if urlsplit(str(url)).scheme not in ("http", "https"):
        raise AddressRefusedError(f"{str(url)[:80]} is not an http(s) URL")
    host = urlsplit(str(url)).hostname or ""
    if local_host(host):
        raise AddressRefusedError(f"{host} is not a public address")
