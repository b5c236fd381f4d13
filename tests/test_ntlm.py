"""The scanner's NTLM parser against the lab's independent CHALLENGE builder and against
hostile blobs: what a Windows server discloses is read out, and nothing malformed escapes as
anything but a ValueError. No network."""

from __future__ import annotations

import contextlib
import os
import random
import struct
import time
from datetime import UTC, datetime

import pytest

from pop3lab import ntlm as lab
from scanner._ntlm import MAX_CHALLENGE, negotiate_message, parse_challenge

NAMES = lab.NtlmNames("CONTOSO", "EXCH01", "contoso.local", "exch01.contoso.local", "contoso.local")


def windows_challenge(version: tuple[int, int, int] = (10, 0, 17763)) -> bytes:
    """What the lab's Exchange answers to our NEGOTIATE."""
    flags = lab.parse_negotiate(negotiate_message())
    return lab.challenge(NAMES, version, flags, now=time.time(), server_challenge=os.urandom(8))


def test_our_negotiate_is_one_a_windows_server_reads_and_names_nobody() -> None:
    message = negotiate_message()
    flags = lab.parse_negotiate(message)
    assert flags & 0x00000001 and flags & 0x02000000  # Unicode, and please send the version
    assert message[16:] == bytes(16)  # no domain, no workstation


def test_a_windows_challenge_discloses_its_domain_hosts_forest_and_build() -> None:
    found = parse_challenge(windows_challenge((6, 1, 7601)))
    assert found.disclosed == {
        "NetBIOS domain": "CONTOSO",
        "NetBIOS computer": "EXCH01",
        "DNS domain": "contoso.local",
        "DNS computer": "exch01.contoso.local",
        "DNS tree (forest)": "contoso.local",
        "Windows version": "6.1.7601",
    }
    assert found.target_name == "CONTOSO"
    assert found.server_time is not None
    assert abs((found.server_time - datetime.now(UTC)).total_seconds()) < 60


def test_a_challenge_without_target_info_or_version_discloses_only_its_name() -> None:
    header = struct.pack("<8sIHHIIQQHHI", b"NTLMSSP\0", 2, 4, 4, 56, 0x1, 0, 0, 0, 0, 60) + bytes(8)
    found = parse_challenge(header + "AB".encode("utf-16-le"))
    assert (found.target_name, found.disclosed) == ("AB", {"NTLM target name": "AB"})


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "too short"),
        (b"NTLMSSP\0" + bytes(10), "too short"),
        (b"XXXXXXXX" + bytes(60), "wrong signature"),
        (bytes(MAX_CHALLENGE + 1), "at most"),
    ],
)
def test_what_is_not_a_challenge_is_refused_with_a_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_challenge(blob)


def test_offsets_and_lengths_pointing_outside_the_message_are_refused() -> None:
    good = bytearray(windows_challenge())
    struct.pack_into("<I", good, 44, 60_000)  # the target info's offset
    with pytest.raises(ValueError, match="outside the message"):
        parse_challenge(bytes(good))
    runaway = bytearray(windows_challenge())
    info_offset = struct.unpack_from("<I", runaway, 44)[0]
    struct.pack_into("<H", runaway, info_offset + 2, 5_000)  # the first AV_PAIR's length
    with pytest.raises(ValueError, match="runs past its end"):
        parse_challenge(bytes(runaway))


def test_random_and_mutated_blobs_only_ever_raise_value_error() -> None:
    chooser = random.Random(13)
    seed = windows_challenge()
    for _ in range(3000):
        blob = bytearray(seed)
        for _ in range(chooser.randint(1, 8)):
            blob[chooser.randrange(len(blob))] = chooser.randrange(256)
        cut = bytes(blob[: chooser.randint(0, len(blob))])
        for candidate in (bytes(blob), cut, os.urandom(chooser.randint(0, 200))):
            with contextlib.suppress(ValueError):
                parse_challenge(candidate)
