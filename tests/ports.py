"""Free loopback ports for test servers. A plain module, not a pytest plugin, so conftest and
the plugins can import it without defeating pytest's assertion rewriting of the plugins."""

from __future__ import annotations

import socket


def free_ports(address: str, count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """`count` distinct ports that nothing listens on now; all are held until all are chosen."""
    sockets = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((address, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(address: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now (TCP unless `kind` says otherwise)."""
    return free_ports(address, 1, kind)[0]
