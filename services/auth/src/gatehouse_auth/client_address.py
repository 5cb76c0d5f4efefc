"""The client address a request came from, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

from gatehouse_common.settings import IPNetwork

UNKNOWN_ADDRESS = "unknown"


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[IPNetwork]
) -> bool:
    return any(address in network for network in proxies)


def client_address(request: Request, trusted_proxies: Sequence[IPNetwork]) -> str:
    """The first untrusted hop, walking X-Forwarded-For from the right.

    Entries left of the first untrusted hop are written by the client and could be anything,
    so they are never used: a client cannot pick the address its failures are counted under.
    """
    peer = _parse(request.client.host) if request.client else None
    if peer is None:
        return UNKNOWN_ADDRESS
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return str(peer)
    hops = [
        hop for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")
    ]
    client = peer
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, trusted_proxies):
            break
    return str(client)
