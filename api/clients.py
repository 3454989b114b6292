"""The client address behind reverse proxies: X-Forwarded-For only from `api.trusted_proxies`."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

IpNetwork = IPv4Network | IPv6Network
FORWARDED_FOR = b"x-forwarded-for"
UNVERIFIED_CLIENT = "unverified-forwarded-client"
"""The identity of requests whose peer address the server replaced before the app saw it."""


def forwarded_hosts(values: Sequence[str]) -> list[str]:
    """The addresses of X-Forwarded-For header values, nearest proxy last, ports removed.

    >>> forwarded_hosts(["203.0.113.9:5100, 10.0.0.2", "[2001:db8::1]:80"])
    ['203.0.113.9', '10.0.0.2', '2001:db8::1']
    """
    hosts = []
    for value in values:
        for item in value.split(","):
            host = item.strip()
            if host.startswith("[") and "]" in host:
                host = host[1 : host.index("]")]
            elif host.count(":") == 1:
                host = host.split(":", 1)[0]
            if host:
                hosts.append(host)
    return hosts


def is_trusted(host: str, trusted: Sequence[IpNetwork]) -> bool:
    """Whether `host` is an IP address inside one of the trusted proxy networks.

    >>> is_trusted("10.1.2.3", [IPv4Network("10.0.0.0/8")]), is_trusted("proxy", [])
    (True, False)
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def client_host(peer: str, forwarded: Sequence[str], trusted: Sequence[IpNetwork]) -> str:
    """The client a request comes from: the TCP peer, unless the peer is a trusted proxy.

    From a trusted proxy, X-Forwarded-For is read from the right: the first address that is
    not a trusted proxy is the client (addresses left of it were written by the client).
    A header from any other peer is ignored. When the peer itself appears in the header, the
    server already replaced the real peer with a forwarded address (uvicorn's default
    `--proxy-headers` for 127.0.0.1): that peer cannot be checked, so all such requests are one
    client, `UNVERIFIED_CLIENT`.

    >>> client_host("198.51.100.7", ["1.2.3.4"], [])
    '198.51.100.7'
    >>> client_host("10.0.0.2", ["1.2.3.4, 203.0.113.9"], [IPv4Network("10.0.0.0/8")])
    '203.0.113.9'
    >>> client_host("1.2.3.4", ["1.2.3.4"], [])
    'unverified-forwarded-client'
    """
    hosts = forwarded_hosts(forwarded)
    if not hosts:
        return peer
    if is_trusted(peer, trusted):
        untrusted = [host for host in hosts if not is_trusted(host, trusted)]
        return untrusted[-1] if untrusted else hosts[0]
    if peer in hosts:
        return UNVERIFIED_CLIENT
    return peer


class ClientAddressMiddleware:
    """Set `scope["client"]` to `client_host(...)`; drop X-Forwarded-For from untrusted peers.

    The app does this itself so that the rate limit keys on the same client however uvicorn
    was started (`cryptopred serve` turns uvicorn's proxy headers off; plain uvicorn trusts
    X-Forwarded-For from 127.0.0.1 by default).
    """

    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[IpNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted_proxies)
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == FORWARDED_FOR]
        peer = scope.get("client")
        if forwarded and peer:
            host = client_host(peer[0], forwarded, self.trusted)
            if host == UNVERIFIED_CLIENT:
                self._warn_once()
            if not is_trusted(peer[0], self.trusted):
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != FORWARDED_FOR]
            scope["client"] = (host, peer[1] if host == peer[0] else 0)
        await self.app(scope, receive, send)

    def _warn_once(self) -> None:
        if not self.warned:
            self.warned = True
            logger.warning(
                "The server replaced the peer address from X-Forwarded-For before the app saw "
                "it (plain uvicorn trusts 127.0.0.1 by default); such requests are rate-limited "
                "as one client. Start uvicorn with --no-proxy-headers (cryptopred serve does) "
                "and list your reverse proxies in api.trusted_proxies"
            )
