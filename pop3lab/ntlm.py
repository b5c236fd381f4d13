"""The server side of NTLM as far as a scanner sees it: a NEGOTIATE in, a CHALLENGE out.

Exchange answers `AUTH NTLM` (POP3, SMTP) and `AUTHENTICATE NTLM` (IMAP) before TLS when
NTLM is on, and its CHALLENGE message (MS-NLMP 2.2.1.2) names the Active Directory domain,
the server's NetBIOS and DNS names, the forest and the Windows build to anyone who asks. The
lab builds that message here, from the endpoint's configured names, so the scanner's own
parser has a realistic counterpart. The lab never verifies an AUTHENTICATE message: nobody
logs in by NTLM, every exchange that gets that far fails.

This module is deliberately independent of the scanner's NTLM parser, so that tests of one
against the other are not circular.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
import time
from dataclasses import dataclass

SIGNATURE = b"NTLMSSP\0"
NEGOTIATE_TYPE, CHALLENGE_TYPE = 1, 2
# A NEGOTIATE is 16 to 40 bytes plus two optional names; anything much larger is hostile.
MAX_NEGOTIATE = 1024
# MS-NLMP 2.2.2.10: NTLMSSP_REVISION_W2K3, the only revision Windows has sent since 2003.
NTLM_REVISION = 0x0F
# Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
_FILETIME_OFFSET = 11_644_473_600

# MS-NLMP 2.2.2.5 negotiate flags used here.
UNICODE = 0x00000001
OEM = 0x00000002
REQUEST_TARGET = 0x00000004
SIGN = 0x00000010
SEAL = 0x00000020
NTLM = 0x00000200
ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
EXTENDED_SESSIONSECURITY = 0x00080000
TARGET_INFO = 0x00800000
VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000
# What a Windows server always sets in its CHALLENGE, and what it echoes only when asked.
_SERVER_FLAGS = REQUEST_TARGET | NTLM | ALWAYS_SIGN | TARGET_TYPE_DOMAIN | TARGET_INFO | VERSION
_ECHOED_FLAGS = SIGN | SEAL | EXTENDED_SESSIONSECURITY | NEGOTIATE_128 | KEY_EXCH | NEGOTIATE_56

# MS-NLMP 2.2.2.1 AV_PAIR ids, in the order Windows writes them.
AV_EOL = 0
AV_NB_COMPUTER = 1
AV_NB_DOMAIN = 2
AV_DNS_COMPUTER = 3
AV_DNS_DOMAIN = 4
AV_DNS_TREE = 5
AV_TIMESTAMP = 7


class NotNegotiate(ValueError):
    """The client's blob is not an NTLMSSP NEGOTIATE message (or not base64 at all)."""


@dataclass(frozen=True)
class NtlmNames:
    """What a Windows server's CHALLENGE discloses: its domain and host names.

    The defaults are Microsoft's documentation names for an on-premises Exchange server.
    `dns_tree` is the forest, which is the domain itself in a single-domain forest.
    """

    netbios_domain: str = "CONTOSO"
    netbios_computer: str = "EXCH01"
    dns_domain: str = "contoso.local"
    dns_computer: str = "exch01.contoso.local"
    dns_tree: str = "contoso.local"

    def __post_init__(self) -> None:
        """NetBIOS names are at most 15 characters; every name must be non-empty."""
        for name in (self.netbios_domain, self.netbios_computer):
            if not 0 < len(name) <= 15:
                raise ValueError(f"NetBIOS name {name!r} must be 1 to 15 characters")
        for name in (self.dns_domain, self.dns_computer, self.dns_tree):
            if not name:
                raise ValueError("DNS names must not be empty")


def parse_negotiate(blob: bytes) -> int:
    """The negotiate flags of an NTLMSSP NEGOTIATE message (MS-NLMP 2.2.1.1)."""
    if len(blob) > MAX_NEGOTIATE:
        raise NotNegotiate(f"{len(blob)} bytes is too long for a NEGOTIATE")
    if len(blob) < 16 or not blob.startswith(SIGNATURE):
        raise NotNegotiate("no NTLMSSP signature")
    message_type, flags = struct.unpack_from("<II", blob, 8)
    if message_type != NEGOTIATE_TYPE:
        raise NotNegotiate(f"message type {message_type}, not NEGOTIATE")
    return int(flags)


def target_info(names: NtlmNames, now: float) -> bytes:
    """The AV_PAIR list: the five names, the server's clock as a FILETIME, then MsvAvEOL."""
    pairs = [
        (AV_NB_DOMAIN, names.netbios_domain.encode("utf-16-le")),
        (AV_NB_COMPUTER, names.netbios_computer.encode("utf-16-le")),
        (AV_DNS_DOMAIN, names.dns_domain.encode("utf-16-le")),
        (AV_DNS_COMPUTER, names.dns_computer.encode("utf-16-le")),
        (AV_DNS_TREE, names.dns_tree.encode("utf-16-le")),
        (AV_TIMESTAMP, struct.pack("<Q", int((now + _FILETIME_OFFSET) * 10_000_000))),
        (AV_EOL, b""),
    ]
    return b"".join(struct.pack("<HH", av_id, len(value)) + value for av_id, value in pairs)


def challenge(
    names: NtlmNames,
    version: tuple[int, int, int],
    client_flags: int,
    *,
    now: float,
    server_challenge: bytes,
) -> bytes:
    """A CHALLENGE message (MS-NLMP 2.2.1.2) answering a NEGOTIATE with `client_flags`.

    The target name is the NetBIOS domain (TARGET_TYPE_DOMAIN, as a domain member says), in
    UTF-16 when the client offered Unicode, else in the OEM (here ASCII) charset.
    """
    if len(server_challenge) != 8:
        raise ValueError("the server challenge is 8 bytes")
    charset = UNICODE if client_flags & UNICODE else OEM
    flags = _SERVER_FLAGS | charset | (client_flags & _ECHOED_FLAGS)
    target_name = names.netbios_domain.encode("utf-16-le" if charset == UNICODE else "ascii")
    info = target_info(names, now)
    header_size = 56
    major, minor, build = version
    header = SIGNATURE + struct.pack(
        "<IHHIIQQHHIBBHBBBB",
        CHALLENGE_TYPE,
        len(target_name),
        len(target_name),
        header_size,
        flags,
        int.from_bytes(server_challenge, "little"),
        0,  # Reserved
        len(info),
        len(info),
        header_size + len(target_name),
        major,
        minor,
        build,
        0,
        0,
        0,  # Reserved
        NTLM_REVISION,
    )
    assert len(header) == header_size
    return header + target_name + info


class NtlmServer:
    """One NTLM exchange as the lab runs it: a NEGOTIATE earns a CHALLENGE, and anything
    after that (the client's AUTHENTICATE) fails, since the lab checks no NTLM response."""

    def __init__(self, names: NtlmNames, version: tuple[int, int, int]) -> None:
        """Ready for the client's first message."""
        self.names, self.version = names, version
        self.challenged = False

    def step(self, response: str) -> str | None:
        """The base64 CHALLENGE answering the client's base64 NEGOTIATE, or None when the
        exchange has failed (not a NEGOTIATE, or the AUTHENTICATE that follows one)."""
        if self.challenged:
            return None
        try:
            flags = parse_negotiate(base64.b64decode(response, validate=True))
        except (binascii.Error, NotNegotiate):
            return None
        self.challenged = True
        message = challenge(
            self.names, self.version, flags, now=time.time(), server_challenge=os.urandom(8)
        )
        return base64.b64encode(message).decode("ascii")
