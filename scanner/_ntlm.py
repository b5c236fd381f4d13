"""NTLM as far as the disclosure check needs it: the NEGOTIATE we send, and what the server's
CHALLENGE (MS-NLMP 2.2.1.2) gives away before anyone has authenticated.

A Windows server answers `AUTH NTLM` (POP3, SMTP) and `AUTHENTICATE NTLM` (IMAP) with a
CHALLENGE whose target information names its Active Directory domain, its NetBIOS and DNS
names, the forest and its Windows build, to anyone, before TLS. Reading it needs no
credentials: the NEGOTIATE names nobody, and the exchange is cancelled after the CHALLENGE.

The blob comes from the server, so every length and offset is checked against the message
before it is read; anything malformed is a ValueError saying what, never an exception of
another kind.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_SIGNATURE = b"NTLMSSP\0"
_NEGOTIATE, _CHALLENGE = 1, 2
# A CHALLENGE is a 56-byte header and a few hundred bytes of names; more is not one.
MAX_CHALLENGE = 4096
_HEADER = struct.Struct("<8sIHHIIQQHHI")  # up to and including TargetInfoFields
_VERSION_OFFSET = _HEADER.size

# MS-NLMP 2.2.2.5: what we ask for. Unicode and OEM names, the target's name and info,
# NTLM with extended session security, and the server's version.
_FLAGS = (
    0x00000001  # NEGOTIATE_UNICODE
    | 0x00000002  # NEGOTIATE_OEM
    | 0x00000004  # REQUEST_TARGET
    | 0x00000200  # NEGOTIATE_NTLM
    | 0x00008000  # NEGOTIATE_ALWAYS_SIGN
    | 0x00080000  # NEGOTIATE_EXTENDED_SESSIONSECURITY
    | 0x02000000  # NEGOTIATE_VERSION
    | 0x20000000  # NEGOTIATE_128
    | 0x80000000  # NEGOTIATE_56
)
_UNICODE = 0x00000001
_VERSION_FLAG = 0x02000000

# MS-NLMP 2.2.2.1 AV_PAIR ids.
_AV_EOL = 0
_AV_NAMES = {
    1: "netbios_computer",
    2: "netbios_domain",
    3: "dns_computer",
    4: "dns_domain",
    5: "dns_tree",
}
_AV_TIMESTAMP = 7
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def negotiate_message() -> bytes:
    """An NTLMSSP NEGOTIATE that names no domain and no workstation."""
    return _SIGNATURE + struct.pack("<II", _NEGOTIATE, _FLAGS) + bytes(16)


@dataclass(frozen=True)
class NtlmChallenge:
    """What a CHALLENGE disclosed. Names are None where the server sent none."""

    target_name: str | None
    netbios_domain: str | None = None
    netbios_computer: str | None = None
    dns_domain: str | None = None
    dns_computer: str | None = None
    dns_tree: str | None = None
    os_version: str | None = None
    server_time: datetime | None = None

    @property
    def disclosed(self) -> dict[str, str]:
        """The names and version it gave away, by what they are, in a stable order. The target
        name counts where no other field carries it: Windows names its NetBIOS domain there
        (again), but Cyrus SASL's NTLM (as in Postfix's smtpd) sends no target information
        at all and puts the server's own host name there."""
        names = (
            self.netbios_domain,
            self.netbios_computer,
            self.dns_domain,
            self.dns_computer,
            self.dns_tree,
        )
        repeated = (self.target_name or "").upper() in {n.upper() for n in names if n}
        fields = {
            "NTLM target name": None if repeated else self.target_name,
            "NetBIOS domain": self.netbios_domain,
            "NetBIOS computer": self.netbios_computer,
            "DNS domain": self.dns_domain,
            "DNS computer": self.dns_computer,
            "DNS tree (forest)": self.dns_tree,
            "Windows version": self.os_version,
        }
        return {label: value for label, value in fields.items() if value}


def parse_challenge(blob: bytes) -> NtlmChallenge:
    """The disclosures of an NTLMSSP CHALLENGE message; ValueError when `blob` is not one."""
    if len(blob) > MAX_CHALLENGE:
        raise ValueError(f"an NTLM challenge of {len(blob)} bytes (at most {MAX_CHALLENGE})")
    if len(blob) < _HEADER.size:
        raise ValueError(f"an NTLM challenge of {len(blob)} bytes is too short")
    (signature, kind, name_length, _, name_offset, flags, _, _, info_length, _, info_offset) = (
        _HEADER.unpack_from(blob)
    )
    if signature != _SIGNATURE or kind != _CHALLENGE:
        raise ValueError("not an NTLM challenge (wrong signature or message type)")
    name = _field(blob, name_offset, name_length, "target name")
    info = _field(blob, info_offset, info_length, "target info")
    values = _av_pairs(info)
    return NtlmChallenge(
        target_name=_text(name, unicode=bool(flags & _UNICODE)) or None,
        os_version=_version(blob, flags),
        server_time=_filetime(values.pop(_AV_TIMESTAMP, None)),
        **{_AV_NAMES[av_id]: _text(value, unicode=True) for av_id, value in values.items()},
    )


def _field(blob: bytes, offset: int, length: int, what: str) -> bytes:
    if offset + length > len(blob) or (length and offset < _HEADER.size):
        raise ValueError(f"the NTLM challenge's {what} lies outside the message")
    return blob[offset : offset + length]


def _av_pairs(info: bytes) -> dict[int, bytes]:
    """The AV_PAIRs we read (names and the timestamp), up to MsvAvEOL."""
    values: dict[int, bytes] = {}
    at = 0
    while at + 4 <= len(info):
        av_id, length = struct.unpack_from("<HH", info, at)
        if av_id == _AV_EOL:
            return values
        value = info[at + 4 : at + 4 + length]
        if len(value) != length:
            raise ValueError("an NTLM target info entry runs past its end")
        if av_id in _AV_NAMES or av_id == _AV_TIMESTAMP:
            values[av_id] = value
        at += 4 + length
    return values


def _text(value: bytes, *, unicode: bool) -> str:
    """A name as the server encoded it; undecodable bytes are shown, not raised."""
    return value.decode("utf-16-le" if unicode else "ascii", errors="replace")


def _version(blob: bytes, flags: int) -> str | None:
    """Windows' major.minor.build from the VERSION structure, when the server sent one."""
    if not flags & _VERSION_FLAG or len(blob) < _VERSION_OFFSET + 8:
        return None
    major, minor, build = struct.unpack_from("<BBH", blob, _VERSION_OFFSET)
    return f"{major}.{minor}.{build}" if major else None


def _filetime(value: bytes | None) -> datetime | None:
    """A FILETIME (100 ns since 1601) as UTC; None when absent or absurd."""
    if value is None or len(value) != 8:
        return None
    ticks = struct.unpack("<Q", value)[0]
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None
