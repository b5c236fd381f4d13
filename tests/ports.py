"""Free loopback ports for test servers. A plain module, not a pytest plugin, so conftest and
the plugins can import it without defeating pytest's assertion rewriting of the plugins.

A port is chosen below the kernel's ephemeral range: a port the kernel picked (bind to port 0)
could be given to an outgoing connection between the choice and the server's bind, which once
made a test server fail to start. No port is handed out twice in a test session.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000
ATTEMPTS = 1000
_handed_out: set[int] = set()


def _below_ephemeral() -> range:
    try:
        first_ephemeral = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768  # Linux's default
    return range(LOWEST, max(first_ephemeral, LOWEST + 1000))


def free_ports(address: str, count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """`count` distinct ports that nothing is bound to now; all are held until all are chosen."""
    ports_range = _below_ephemeral()
    held: list[socket.socket] = []
    try:
        for _ in range(ATTEMPTS):
            if len(held) == count:
                break
            port = random.choice(ports_range)
            if port in _handed_out:
                continue
            sock = socket.socket(socket.AF_INET, kind)
            try:
                sock.bind((address, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        if len(held) < count:
            raise RuntimeError(f"no {count} free ports on {address} in {ATTEMPTS} attempts")
        ports = [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()
    _handed_out.update(ports)
    return ports


def free_port(address: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing is bound to now (TCP unless `kind` says otherwise)."""
    return free_ports(address, 1, kind)[0]
