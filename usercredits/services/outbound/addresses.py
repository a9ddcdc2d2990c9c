"""Where a webhook may be sent. Any http(s) URL on a laptop; in production only https, and
never to an address inside the deployment's network: loopback, private, link-local
(cloud metadata), shared, multicast or reserved. A host name is checked on the addresses it
resolves to at each delivery (server/dispatcher.py connects only to those), so a name that
later resolves inside cannot be used to reach it."""

from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

from usercredits.services.errors import InvalidInput, shown

MAX_URL = 2048


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
    if production:
        literal = literal_address(parts.hostname)
        if literal is not None and not is_public(literal):
            raise InvalidInput(f"url {shown(url)} points inside the network")
        if parts.hostname.lower() == "localhost" or parts.hostname.endswith(".localhost"):
            raise InvalidInput(f"url {shown(url)} points inside the network")
    return url


def is_public(address: IPv4Address | IPv6Address) -> bool:
    """Whether a production webhook may connect to `address`."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPv4Address | IPv6Address | None:
    """The address `host` spells, or None for a name."""
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None
