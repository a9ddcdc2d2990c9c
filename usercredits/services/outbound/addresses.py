"""Where a webhook may be sent. Any http(s) URL on a laptop; in production only https, and
never to an address inside the deployment's network: loopback, private, link-local
(cloud metadata), shared, multicast or reserved, also when spelt as an IPv6 address that
embeds one (IPv4-mapped, -compatible or -translated, NAT64, 6to4).

A URL's host is judged as the HTTP client will connect to it: normalised as aiohttp's URL
type does (IDNA with the UTS 46 mapping, so `127。0。0。1` and fullwidth or circled digits
are 127.0.0.1), and the shorthand IPv4 forms the system's resolver reads as addresses
(`2130706433`, `0x7f.1`, `127.1`) are addresses too. A host that does not survive that
normalisation is refused. A host name is checked on the addresses it resolves to at each
delivery, and every socket is checked on the address it connects to
(server/dispatcher.py), so a name that later resolves inside cannot be used to reach it.
"""

import socket
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

from yarl import URL

from usercredits.services.errors import InvalidInput, shown

MAX_URL = 2048
NAT64 = IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix (RFC 6052): the last 32 bits are the IPv4 address reached."""
LOCAL_NAT64 = IPv6Network("64:ff9b:1::/48")
"""The local-use NAT64 prefix (RFC 8215): translated inside a deployment, never public,
whatever prefix length it embeds its IPv4 address at."""
EMBEDDING_96 = (IPv6Network("::/96"), IPv6Network("::ffff:0:0:0/96"), NAT64)
"""Prefixes whose last 32 bits are an IPv4 address: IPv4-compatible (deprecated, :: and
::1 among them), IPv4-translated (SIIT) and NAT64. IPv4-mapped and 6to4 have their own
properties in `ipaddress`."""


def check_url(url: object, *, production: bool) -> str:
    """`url` if an endpoint may have it; InvalidInput saying why not."""
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL:
        raise InvalidInput(f"an endpoint's url has 1 to {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise InvalidInput(f"url {shown(url)} is not a URL") from None
    schemes = {"https"} if production else {"http", "https"}
    if parts.scheme not in schemes:
        allowed = " or ".join(sorted(schemes))
        raise InvalidInput(f"an endpoint's url must be {allowed}, got {shown(url)}")
    if not parts.hostname:
        raise InvalidInput(f"url {shown(url)} names no host")
    if parts.username or parts.password:
        raise InvalidInput("an endpoint's url may not carry credentials")
    host = connected_host(url)
    if production and is_inside(host):
        raise InvalidInput(f"url {shown(url)} points inside the network")
    return url


def connected_host(url: str) -> str:
    """The host the HTTP client connects to for `url`, as it spells it (ASCII, lower case,
    IPv6 without brackets); InvalidInput when the host does not normalise."""
    try:
        host = URL(url).raw_host
    except ValueError:  # UnicodeError included: a label IDNA refuses
        raise InvalidInput(f"url {shown(url)} has a host that is not a valid name") from None
    if not host:
        raise InvalidInput(f"url {shown(url)} names no host")
    return host


def is_inside(host: str) -> bool:
    """Whether a normalised host is known to be inside the network without resolving it:
    localhost names and addresses that are not public."""
    name = host.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = literal_address(name)
    return address is not None and not is_public(address)


def is_public(address: IPv4Address | IPv6Address) -> bool:
    """Whether a production webhook may connect to `address`; an IPv6 address that embeds
    an IPv4 one is judged by the IPv4 address."""
    if isinstance(address, IPv6Address):
        if address in LOCAL_NAT64:
            return False
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address a transition form of IPv6 carries, or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in EMBEDDING_96):
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def literal_address(host: str) -> IPv4Address | IPv6Address | None:
    """The address `host` spells, in standard or shorthand IPv4 form, or None for a name."""
    bare = host.strip("[]")
    try:
        return ip_address(bare)
    except ValueError:
        pass
    if not bare or not all(c in "0123456789abcdefx." for c in bare.lower()):
        return None
    try:
        return IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None
