"""A real Dovecot: first that the harness serves what Debian's Dovecot really says, then that the
scanner reads it right. Every connection goes from 127.0.0.1 to 127.0.0.2 (see tests/dovecot.py).
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from pop3lab.certs import root_ca_pem
from tests.dovecot import SERVICE_NAME, Dovecot, DovecotConfig

pytestmark = pytest.mark.dovecot

# Upstream says "Dovecot ready.", Debian's package "Dovecot (Debian) ready.".
GREETING = r"\+OK Dovecot (\(\w+\) )?ready\.\r\n"


def _line(sock: socket.socket | ssl.SSLSocket) -> str:
    """One reply line; POP3 replies here are short, so a byte at a time is fine."""
    data = b""
    while not data.endswith(b"\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return data.decode()


def _ask(sock: socket.socket | ssl.SSLSocket, command: str) -> str:
    sock.sendall(command.encode() + b"\r\n")
    return _line(sock)


def _user_reply(server: Dovecot) -> str:
    """The reply to USER for a name that cannot exist, before TLS. PASS is never sent."""
    with server.connect(server.pop3_port) as sock:
        _line(sock)
        return _ask(sock, "USER nobody-popcompliance-test")


def test_it_greets_as_dovecot(dovecot: Dovecot) -> None:
    with dovecot.connect(dovecot.pop3_port) as sock:
        assert re.match(GREETING, _line(sock))


def test_it_refuses_user_before_tls_when_plaintext_auth_is_disabled(dovecot: Dovecot) -> None:
    reply = _user_reply(dovecot)
    assert reply.startswith("-ERR [AUTH] Plaintext authentication disallowed")


def test_it_accepts_user_before_tls_when_plaintext_auth_is_enabled(
    dovecot_plaintext: Dovecot,
) -> None:
    assert _user_reply(dovecot_plaintext).startswith("+OK")


def test_it_refuses_user_before_tls_when_ssl_is_required(dovecot_ssl_required: Dovecot) -> None:
    assert _user_reply(dovecot_ssl_required).startswith("-ERR [AUTH]")


def test_stls_verifies_against_the_test_root_and_then_accepts_user(dovecot: Dovecot) -> None:
    context = ssl.create_default_context(cadata=root_ca_pem().decode())
    with dovecot.connect(dovecot.pop3_port) as sock:
        _line(sock)
        assert _ask(sock, "STLS").startswith("+OK")
        with context.wrap_socket(sock, server_hostname=SERVICE_NAME) as tls:
            assert _ask(tls, "USER nobody-popcompliance-test").startswith("+OK")


def test_pop3s_serves_the_greeting_inside_tls(dovecot: Dovecot) -> None:
    context = ssl.create_default_context(cadata=root_ca_pem().decode())
    with (
        dovecot.connect(dovecot.pop3s_port) as sock,
        context.wrap_socket(sock, server_hostname=SERVICE_NAME) as tls,
    ):
        assert re.match(GREETING, _line(tls))


def _live_processes_in_group(group: int) -> list[int]:
    """Processes of process group `group` that still run; zombies (already dead) excluded."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def test_it_leaves_no_process_or_files_behind() -> None:
    server = Dovecot().start()
    group, directory = server.pid, server.directory
    assert len(_live_processes_in_group(group)) > 1  # the master and its children
    server.stop()
    assert directory is not None and not directory.exists()
    assert _live_processes_in_group(group) == []


def test_ssl_no_leaves_pop3s_closed(dovecot_factory: Callable[[DovecotConfig], Dovecot]) -> None:
    server = dovecot_factory(DovecotConfig(ssl="no"))
    with pytest.raises(ConnectionRefusedError):
        server.connect(server.pop3s_port)
