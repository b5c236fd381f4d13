"""The emulator's NTLM CHALLENGE: decoded here with a few lines of struct code and by pyspnego
(a well-kept NTLM implementation), never by pop3lab's own code, and served on all three
protocols as Exchange serves it."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import pytest
import spnego
from spnego.__main__ import parse_token

from pop3lab import EndpointConfig, LabThread, NtlmNames
from pop3lab.ntlm import NotNegotiate, challenge, parse_negotiate
from tests.lab_client import LineClient, serve

NAMES = NtlmNames(
    "FABRIKAM", "MAIL02", "corp.fabrikam.com", "mail02.corp.fabrikam.com", "fabrikam.com"
)


def negotiate() -> tuple[Any, str]:
    """A real client's NTLM context and its NEGOTIATE, base64 as SASL carries it."""
    client = spnego.client("alice", "password", hostname="mail", protocol="ntlm")
    return client, base64.b64encode(client.step()).decode()


def decode(message: bytes) -> dict[str, Any]:
    """A CHALLENGE's flags, target name, target info (by AvId) and version (MS-NLMP 2.2.1.2)."""
    assert message[:12] == b"NTLMSSP\0\x02\0\0\0"
    name_len, _, name_offset, flags = struct.unpack_from("<HHII", message, 12)
    info_len, _, info_offset = struct.unpack_from("<HHI", message, 40)
    major, minor, build = struct.unpack_from("<BBH", message, 48)
    info, at = {}, info_offset
    while at < info_offset + info_len:
        av_id, av_len = struct.unpack_from("<HH", message, at)
        info[av_id] = message[at + 4 : at + 4 + av_len]
        at += 4 + av_len
    return {
        "flags": flags,
        "target": message[name_offset : name_offset + name_len].decode("utf-16-le"),
        "info": info,
        "version": (major, minor, build),
    }


def test_the_challenge_carries_every_name_and_the_clock() -> None:
    _, blob = negotiate()
    before = time.time()
    message = challenge(
        NAMES,
        (10, 0, 17763),
        parse_negotiate(base64.b64decode(blob)),
        now=before,
        server_challenge=b"\x01" * 8,
    )
    fields = decode(message)
    names = {
        av: value.decode("utf-16-le") for av, value in fields["info"].items() if av in range(1, 6)
    }
    assert names == {
        2: "FABRIKAM",
        1: "MAIL02",
        4: "corp.fabrikam.com",
        3: "mail02.corp.fabrikam.com",
        5: "fabrikam.com",
    }
    filetime = struct.unpack("<Q", fields["info"][7])[0]
    assert abs(filetime / 1e7 - 11_644_473_600 - before) < 1
    assert fields["info"][0] == b"" and fields["target"] == "FABRIKAM"
    assert fields["version"] == (10, 0, 17763)
    assert fields["flags"] & 0x00800000 and fields["flags"] & 0x02000000  # TARGET_INFO, VERSION


def test_pyspnego_reads_the_challenge_and_answers_it() -> None:
    client, blob = negotiate()
    message = challenge(
        NAMES,
        (6, 1, 7601),
        parse_negotiate(base64.b64decode(blob)),
        now=time.time(),
        server_challenge=b"\x02" * 8,
    )
    parsed = parse_token(message)["Data"]
    assert parsed["Version"]["Major"] == 6 and parsed["Version"]["Build"] == 7601
    assert [pair["Value"] for pair in parsed["Payload"]["TargetInfo"]][:5] == [
        "FABRIKAM",
        "MAIL02",
        "corp.fabrikam.com",
        "mail02.corp.fabrikam.com",
        "fabrikam.com",
    ]
    assert client.step(message)[:12] == b"NTLMSSP\0\x03\0\0\0"  # an AUTHENTICATE follows


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"NTLMSSP\0\x02\0\0\0" + bytes(8), "not NEGOTIATE"),
        (b"NTLMSSX\0\x01\0\0\0" + bytes(8), "no NTLMSSP signature"),
        (b"NTLMSSP\0\x01", "no NTLMSSP signature"),
        (b"NTLMSSP\0\x01\0\0\0" + bytes(2000), "too long"),
    ],
)
def test_a_hostile_negotiate_is_refused_with_a_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(NotNegotiate, match=reason):
        parse_negotiate(blob)


@pytest.mark.parametrize(
    ("profile", "windows", "version"),
    [
        ("exchange2010", None, (6, 1, 7601)),
        ("exchange2013", "2012r2", (6, 3, 9600)),
        ("exchange2016", "2016", (10, 0, 14393)),
        ("exchange2019", None, (10, 0, 17763)),
        ("exchange2019", "2022", (10, 0, 20348)),
    ],
)
def test_the_version_is_the_endpoints_windows(
    profile: str, windows: str | None, version: tuple[int, int, int]
) -> None:
    assert EndpointConfig(profile, windows=windows).ntlm_version == version


def pop3_challenge(client: LineClient, blob: str) -> str:
    assert client.ask("AUTH NTLM") == "+ "
    reply = client.ask(blob)
    assert reply.startswith("+ ")
    return reply.removeprefix("+ ")


def test_pop3_discloses_the_names_before_tls_under_plain_text_authentication(
    lab: LabThread,
) -> None:
    endpoint = serve(
        lab, EndpointConfig(login_type="PlainTextAuthentication", ntlm_names=NAMES, windows="2016")
    )
    _, blob = negotiate()
    with LineClient(endpoint.address, endpoint.pop3_port) as client:
        client.line()
        fields = decode(base64.b64decode(pop3_challenge(client, blob)))
        assert client.ask("*") == "-ERR The AUTH protocol exchange was canceled by the client."
    assert fields["info"][3].decode("utf-16-le") == "mail02.corp.fabrikam.com"
    assert fields["version"] == (10, 0, 14393)


def test_pop3_under_secure_login_offers_ntlm_only_inside_tls(lab: LabThread) -> None:
    endpoint = serve(lab, EndpointConfig(login_type="SecureLogin"))
    _, blob = negotiate()
    with LineClient(endpoint.address, endpoint.pop3_port) as client:
        client.line()
        assert client.ask("AUTH NTLM") == "-ERR Command is not valid in this state."
        assert client.ask("STLS") == "+OK Begin TLS negotiation."
        client.starttls()
        assert decode(base64.b64decode(pop3_challenge(client, blob)))["target"] == "CONTOSO"


def test_imap_authenticate_ntlm_answers_then_fails_the_authenticate(lab: LabThread) -> None:
    config = EndpointConfig(imap=True, imap_login_type="PlainTextAuthentication", ntlm_names=NAMES)
    endpoint = serve(lab, config)
    client_context, blob = negotiate()
    with LineClient(endpoint.address, endpoint.imap_port) as client:
        client.line()
        assert client.ask("n1 AUTHENTICATE NTLM") == "+ "
        reply = client.ask(blob)
        assert reply.startswith("+ ")
        message = base64.b64decode(reply.removeprefix("+ "))
        assert decode(message)["info"][4].decode("utf-16-le") == "corp.fabrikam.com"
        authenticate = base64.b64encode(client_context.step(message)).decode()
        assert client.ask(authenticate) == "n1 NO AUTHENTICATE failed."


def test_imap_cancel_after_the_challenge(lab: LabThread) -> None:
    endpoint = serve(lab, EndpointConfig(imap=True, imap_login_type="PlainTextAuthentication"))
    _, blob = negotiate()
    with LineClient(endpoint.address, endpoint.imap_port) as client:
        client.line()
        client.ask("n1 AUTHENTICATE NTLM")
        assert client.ask(blob).startswith("+ TlRMTVNTUAAC")
        assert client.ask("*") == "n1 NO The AUTH protocol exchange was canceled by the client."


def test_smtp_auth_ntlm_discloses_before_tls(lab: LabThread) -> None:
    endpoint = serve(lab, EndpointConfig(submission=True, ntlm_names=NAMES))
    _, blob = negotiate()
    with LineClient(endpoint.address, endpoint.submission_port) as client:
        client.line()
        client.send("EHLO client.example.test")
        client.until("250 ")
        assert client.ask("AUTH NTLM") == "334 "
        reply = client.ask(blob)
        assert reply.startswith("334 ")
        assert decode(base64.b64decode(reply.removeprefix("334 ")))["info"][1] == "MAIL02".encode(
            "utf-16-le"
        )
        assert client.ask("*") == "501 5.5.4 Authentication cancelled"


@pytest.mark.parametrize(
    ("config", "port", "command", "reply"),
    [
        (
            EndpointConfig(login_type="PlainTextAuthentication", ntlm=False),
            "pop3_port",
            "AUTH NTLM",
            "-ERR Command is not valid in this state.",
        ),
        (
            EndpointConfig(login_type="PlainTextLogin", ntlm=False),
            "pop3_port",
            "AUTH NTLM",
            "-ERR Protocol error. 14",
        ),
        (
            EndpointConfig(imap=True, imap_login_type="PlainTextLogin", imap_ntlm=False),
            "imap_port",
            "n1 AUTHENTICATE NTLM",
            "n1 BAD Command Argument Error. 11",
        ),
        (
            EndpointConfig(imap=True, imap_login_type="PlainTextAuthentication", imap_ntlm=False),
            "imap_port",
            "n1 AUTHENTICATE NTLM",
            "n1 BAD Command received in Invalid state.",
        ),
    ],
)
def test_with_ntlm_off_nothing_is_disclosed(
    lab: LabThread, config: EndpointConfig, port: str, command: str, reply: str
) -> None:
    endpoint = serve(lab, config)
    with LineClient(endpoint.address, getattr(endpoint, port)) as client:
        client.line()
        assert client.ask(command) == reply


def test_smtp_without_integrated_offers_no_ntlm(lab: LabThread) -> None:
    endpoint = serve(
        lab, EndpointConfig(submission=True, submission_auth="Tls,BasicAuth,BasicAuthRequireTLS")
    )
    with LineClient(endpoint.address, endpoint.submission_port) as client:
        client.line()
        client.send("EHLO client.example.test")
        assert not any("NTLM" in line for line in client.until("250 "))
        assert client.ask("AUTH NTLM") == "504 5.7.4 Unrecognized authentication type"
