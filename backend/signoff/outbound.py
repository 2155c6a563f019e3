"""Outbound HTTP that cannot be pointed at the inside: every request (and every redirect hop)
is resolved first, refused when any address is not public (loopback, private, link-local,
shared, multicast, reserved) unless allow-listed, and then sent to the address that was
checked, so DNS cannot answer differently between the check and the connection.

Notification plugins make their HTTP calls with `client()`; the allow-list is
`SIGNOFF_OUTBOUND_ALLOW` (CIDR ranges or host names), set by the composition roots with
`configure()`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from signoff.settings import Settings, get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(httpx.TransportError):
    """The destination is not a public address and is not allow-listed."""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which non-public destinations are allowed anyway: networks and exact host names."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> OutboundPolicy:
        """A policy from `SIGNOFF_OUTBOUND_ALLOW`-style entries (`10.0.0.0/8`, `hooks.internal`)."""
        networks, hosts = [], set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, host: str, address: IPAddress) -> bool:
        """Whether `host`, resolved to `address`, may be contacted."""
        if host.lower().rstrip(".") in self.hosts:
            return True
        if _is_public(address):
            return True
        return any(address in network for network in self.networks)


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


_policy: OutboundPolicy | None = None


def configure(settings: Settings) -> None:
    """Use the allow-list of `settings` for every outbound request of this process."""
    global _policy
    _policy = OutboundPolicy.from_entries(settings.outbound_allow)


def policy() -> OutboundPolicy:
    """The process's policy (from the environment's settings until `configure` is called)."""
    return _policy or OutboundPolicy.from_entries(get_settings().outbound_allow)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an address literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def checked_address(host: str, port: int, rules: OutboundPolicy) -> IPAddress:
    """The address to connect to: refused unless every address of `host` is allowed (a name
    with one private answer among public ones is refused too)."""
    addresses = await resolve(host, port)
    refused = [a for a in addresses if not rules.allows(host, a)]
    if refused or not addresses:
        raise OutboundRefused(
            f"refused to connect to {host} ({refused[0] if refused else 'no address'}): "
            "not a public address (allow it with SIGNOFF_OUTBOUND_ALLOW)"
        )
    return addresses[0]


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that checks, then pins, the destination of every request."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await checked_address(host, port, policy())
        if str(address) != host:
            request.url = url.copy_with(host=str(address))
            request.headers["host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await super().handle_async_request(request)


@functools.lru_cache(maxsize=16)
def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    # Building a context loads the CA bundle: tens of milliseconds of CPU, measured as the
    # largest cost of a webhook delivery when every client built its own. A client-side
    # context is safe to share.
    return httpx.create_ssl_context(verify=verify)


def client(**kwargs: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose requests go through `GuardedTransport` (redirects too).
    Takes `AsyncClient`'s arguments; `verify` (True, False, a CA bundle path or an
    `ssl.SSLContext`) and `limits` (the connection pool's) are handed to the transport,
    `verify` as a context built once per value."""
    verify = kwargs.pop("verify", True)
    context = verify if isinstance(verify, ssl.SSLContext) else _ssl_context(verify)
    pool = {"limits": kwargs.pop("limits")} if "limits" in kwargs else {}
    return httpx.AsyncClient(transport=GuardedTransport(verify=context, **pool), **kwargs)
