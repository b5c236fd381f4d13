"""The POP3 reply parser and the bounded line reader."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner._errors import ProtocolError
from scanner._wire import (
    MAX_LINE,
    Pop3Connection,
    capability_names,
    parse_capabilities,
    parse_reply,
    sasl_mechanisms,
)


def test_it_reads_ok_and_err_replies():
    assert parse_reply(b"+OK Dovecot ready.\r\n").ok
    assert parse_reply(b"+OK\r\n").text == ""
    refused = parse_reply(b"-ERR Command is not valid in this state.\r\n")
    assert not refused.ok and refused.text == "Command is not valid in this state."


def test_it_reads_a_sasl_continuation():
    reply = parse_reply(b"+ \r\n")
    assert reply.ok and reply.continuation


def test_it_rejects_a_line_that_is_not_pop3():
    with pytest.raises(ValueError, match="not a POP3 reply"):
        parse_reply(b"* OK IMAP4rev1 ready\r\n")


@given(st.binary(max_size=600))
def test_the_parser_either_parses_or_raises_value_error(line):
    try:
        reply = parse_reply(line)
    except ValueError:
        return
    assert reply.line.upper().startswith(("+OK", "-ERR", "+"))
    assert reply.ok == (not reply.line.upper().startswith("-ERR"))


@given(st.sampled_from(["+OK", "-ERR"]), st.text(max_size=200).filter(lambda t: "\n" not in t))
def test_the_parser_keeps_the_text_after_the_status(status, text):
    reply = parse_reply(f"{status} {text}\r\n".encode())
    assert reply.ok == (status == "+OK")
    assert reply.text == text.rstrip("\r")


def test_capabilities_are_folded_and_read_by_keyword():
    capabilities = parse_capabilities([b"TOP\r\n", b"SASL  NTLM GSSAPI plain\r\n", b"\r\n"])
    assert capabilities == ("TOP", "SASL NTLM GSSAPI plain")
    assert capability_names(capabilities) == {"TOP", "SASL"}
    assert sasl_mechanisms(capabilities) == {"NTLM", "GSSAPI", "PLAIN"}
    assert sasl_mechanisms(None) == set()


async def _read_from(data: bytes) -> bytes:
    reader = asyncio.StreamReader(limit=MAX_LINE)
    reader.feed_data(data)
    reader.feed_eof()
    connection = Pop3Connection(reader, None)  # type: ignore[arg-type]
    return await connection.read_line()


def test_a_line_longer_than_the_limit_is_a_protocol_error():
    with pytest.raises(ProtocolError, match=f"longer than {MAX_LINE} bytes"):
        asyncio.run(_read_from(b"+OK " + b"x" * (MAX_LINE * 3) + b"\r\n"))


def test_a_connection_closed_mid_line_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="closed the connection mid-reply"):
        asyncio.run(_read_from(b"+OK partial"))
