"""Where the worker may send a webhook: the one SSRF check, at edit and at delivery.

A programme's webhook URL is chosen by whoever holds a manager key, and the
worker POSTs to it from inside the deployment, so without a check a URL like
``http://169.254.169.254/latest/meta-data/`` or ``http://127.0.0.1:5432/``
turns the worker into a proxy to the cloud metadata service or the database.

The rule (:func:`address_refusal`):

- never: unspecified, multicast, link-local (169.254.0.0/16 — the metadata
  service — and fe80::/10), reserved and broadcast addresses;
- only with ``PEERLEARN_WEBHOOK_ALLOW_PRIVATE``: every other non-global
  address (loopback, RFC 1918, CGNAT, unique-local IPv6, ...), for receivers
  on the same premises;
- ``https`` only, unless ``PEERLEARN_WEBHOOK_ALLOW_HTTP`` (development);
- no credentials in the URL (they would be logged and sent everywhere).

The URL is checked when a programme is created or edited (a 422 names the
reason), and the name is resolved and every address checked again at each
delivery, which then connects to the checked address itself, so a DNS record
changed after the edit (rebinding) cannot point the worker elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from peerlearn.access import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT = 5.0


class WebhookRefused(Invalid):
    """A webhook target the rule does not allow (the message says why)."""


@dataclass(frozen=True)
class Target:
    """A checked webhook target: connect to one of ``addresses`` (every one
    passed the rule, in resolver order), present ``host``."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def pinned_url(self, address: IPAddress) -> str:
        """The URL with a checked address in place of the name."""
        parts = urlsplit(self.url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        return parts._replace(netloc=f"{literal}:{self.port}").geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def address_refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why the worker must not post to ``ip``, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return None if allow_private else _private(ip)
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip.is_link_local:
        return f"{ip} is a link-local, multicast, reserved or unspecified address"
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return f"{ip} is the broadcast address"
    if not ip.is_global and not allow_private:
        return _private(ip)
    return None


def _private(ip: IPAddress) -> str:
    return (
        f"{ip} is a loopback or private address"
        " (set PEERLEARN_WEBHOOK_ALLOW_PRIVATE for on-premises receivers)"
    )


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str
    port: int


def parse_webhook_url(url: str, *, allow_http: bool) -> ParsedUrl:
    """Scheme, host and port of an acceptable URL, or :class:`WebhookRefused`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"webhook_url is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise WebhookRefused("webhook_url must be an https URL")
    if scheme == "http" and not allow_http:
        raise WebhookRefused(
            "webhook_url must use https (set PEERLEARN_WEBHOOK_ALLOW_HTTP for development)"
        )
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook_url must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookRefused("webhook_url has no host")
    return ParsedUrl(scheme, host, port or (443 if scheme == "https" else 80))


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
    )
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


async def check_webhook_url(
    url: str, *, allow_private: bool, allow_http: bool, require_resolution: bool
) -> Target | None:
    """Check ``url`` against the rule; every address its host resolves to must pass.

    ``require_resolution``: at delivery a name that does not resolve is refused
    (nothing to connect to); at edit time it is accepted (DNS may be down, or
    the record not created yet) and the delivery checks it. Returns the target
    to connect to, or None when the name did not resolve at edit time."""
    parsed = parse_webhook_url(url, allow_http=allow_http)
    try:
        addresses = await resolve(parsed.host, parsed.port)
    except (OSError, TimeoutError) as exc:
        if require_resolution:
            raise WebhookRefused(f"webhook host {parsed.host!r} does not resolve: {exc}") from exc
        return None
    if not addresses:
        if require_resolution:
            raise WebhookRefused(f"webhook host {parsed.host!r} has no address")
        return None
    for ip in addresses:
        why = address_refusal(ip, allow_private=allow_private)
        if why is not None:
            raise WebhookRefused(f"webhook_url {parsed.host!r} refused: {why}")
    return Target(url, parsed.scheme, parsed.host, parsed.port, tuple(addresses))
