"""The ClientHellos themselves: every size they can take is well formed, and none falls in the
256–511 byte range some TLS terminators hang on. No network."""

from __future__ import annotations

import struct

import pytest

from scanner._errors import ProtocolError
from scanner._hello import Offer, client_hello
from scanner._suites import PROTOCOLS, suites_for


@pytest.mark.parametrize("protocol", PROTOCOLS[1:])
def test_hellos_of_every_length_are_well_formed_and_skip_the_troublesome_range(
    protocol: str,
) -> None:
    codes = [suite.code for suite in suites_for(protocol)]
    for sni_length in (0, 20, 63, 81, 82, 83, 120):
        # Labels of at most 30 characters, so every length is a valid name.
        labels = [sni_length % 30 or 30] + [30] * (sni_length // 30)
        sni = ".".join("a" * size for size in labels) + ".test" if sni_length else None
        for count in range(1, len(codes) + 1, 3):
            record = client_hello(Offer(protocol, tuple(codes[:count]), sni=sni))
            kind, _, length = struct.unpack("!BHH", record[:5])
            assert kind == 22 and length == len(record) - 5
            handshake_length = int.from_bytes(record[6:9], "big")
            assert handshake_length == length - 4
            assert not 256 <= length < 512 or protocol == "SSLv3", (sni_length, count, length)


def test_a_name_that_cannot_be_sent_as_sni_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not a name to send as SNI"):
        client_hello(Offer("TLSv1.2", (0xC02F,), sni=f"{'a' * 64}.example.test"))
