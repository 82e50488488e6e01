"""Client addresses as budget keys: parsed, never stored raw.

An address comes from the peer of the connection or, behind trusted proxies, from
``X-Forwarded-For`` -- text a client may have written. Only a valid IP address becomes a key:
anything else is logged and counted in one shared ``"unknown"`` budget, as is a request with
no address at all (a unix socket behind nginx), so no request escapes the per-address budgets.
An IPv6 client usually holds a whole /64, so IPv6 addresses are counted per /64.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

log = logging.getLogger("sms2fa")

UNKNOWN = "unknown"


def address_key(value: str | None) -> str:
    """The budget key for a client address: an IPv4 address, an IPv6 /64, or ``"unknown"``."""
    if not value or value == UNKNOWN:
        return UNKNOWN
    key = _parsed(value)
    if key is None:
        # repr and a cut: the value is the client's, and must not forge log lines.
        log.warning("sms2fa: ignoring a client address that is not an IP address: %r", value[:60])
        return UNKNOWN
    return key


@functools.lru_cache(maxsize=4096)  # a client sends many requests; ipaddress is slow
def _parsed(value: str) -> str | None:
    """``value``'s key, or None when it is no IP address (or a key made here already)."""
    text = value.strip().strip("[]")
    try:
        if "/" in text:  # a key made here already (the HTTP layer hands keys to the engine)
            network = ipaddress.ip_network(text, strict=False)
            text = str(network.network_address)
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:198.51.100.7 is 198.51.100.7
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
        return str(network)
    return str(address)
