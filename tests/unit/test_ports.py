"""Ports for test and bench servers come from below the kernel's ephemeral range."""

from __future__ import annotations

import socket

from service.ports import _ephemeral_low, free_port, port_in_use


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports), "a port was handed out twice"
    assert all(p < _ephemeral_low() for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))
        s.listen()
        assert port_in_use("127.0.0.1", ports[0])
    assert not port_in_use("127.0.0.1", ports[1])
