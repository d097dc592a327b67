"""The webhook SSRF rule (peerlearn/outbound.py) on addresses and URLs, no network."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from peerlearn.outbound import WebhookRefused, address_refusal, check_webhook_url, parse_webhook_url


@pytest.mark.parametrize(
    ("address", "default", "with_private"),
    [
        ("8.8.8.8", True, True),
        ("2001:4860:4860::8888", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),
        ("fc00::1", False, True),
        ("169.254.169.254", False, False),  # cloud metadata: never
        ("::ffff:169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("240.0.0.1", False, False),
        ("255.255.255.255", False, False),
    ],
)
def test_address_rule(address: str, default: bool, with_private: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (address_refusal(ip, allow_private=False) is None) is default
    assert (address_refusal(ip, allow_private=True) is None) is with_private


def test_url_rule() -> None:
    assert parse_webhook_url("https://hooks.example.org/x", allow_http=False).port == 443
    for url, needle in [
        ("http://hooks.example.org/x", "https"),
        ("ftp://hooks.example.org/x", "https"),
        ("https://user:pw@hooks.example.org/x", "credentials"),
        ("https:///x", "no host"),
        ("https://hooks.example.org:99999/x", "valid URL"),
    ]:
        with pytest.raises(WebhookRefused, match=needle):
            parse_webhook_url(url, allow_http=False)
    assert parse_webhook_url("http://h.example/x", allow_http=True).port == 80


def test_ip_literals_are_checked_without_dns() -> None:
    def check(url: str, **allow: bool) -> object:
        opts = {"allow_private": False, "allow_http": True, **allow}
        return asyncio.run(check_webhook_url(url, require_resolution=True, **opts))

    with pytest.raises(WebhookRefused, match="link-local"):
        check("http://169.254.169.254/latest/meta-data/", allow_private=True)
    with pytest.raises(WebhookRefused, match="private"):
        check("http://[::1]:8080/hook")
    target = check("http://[::1]:8080/hook", allow_private=True)
    assert target.pinned_url(target.addresses[0]) == "http://[::1]:8080/hook"  # type: ignore[attr-defined]
    assert target.host_header == "[::1]:8080"  # type: ignore[attr-defined]
