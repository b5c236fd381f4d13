"""OCSP stapling: does an implicit-TLS entry point staple its CA's OCSP response?

Python's ssl module cannot ask for a stapled response, so a TLS 1.2 ClientHello of our own
(scanner._hello) asks with status_request and reads the server's first flight, where TLS 1.2
carries the CertificateStatus in the clear. No handshake is completed. TLS 1.3 encrypts the
stapled response, so a server that refuses TLS 1.2 cannot be told from outside this way; the
fact then says so. Entry points reached after STLS/STARTTLS are not asked: they serve the same
certificate from the same server, and the upgrade would cost a conversation each.
"""

from __future__ import annotations

import asyncio

from scanner._errors import ScanError
from scanner._hello import Offer, client_hello, read_stapled
from scanner._suites import suites_for
from scanner._target import Settings
from scanner._wire import LineConnection

NOT_STAPLED = "not stapled"
STAPLED = "stapled"
# Suites authenticated by a certificate (the only ones with a status to staple), AEAD first,
# fewer than 128: some servers refuse longer hellos.
_SUITES = tuple(
    suite.code
    for suite in sorted(suites_for("TLSv1.2"), key=lambda suite: not suite.aead)
    if suite.key_exchange in ("ECDHE_RSA", "ECDHE_ECDSA", "DHE_RSA", "RSA")
)[:120]


async def stapled_response(
    address: str, port: int, sni: str | None, settings: Settings
) -> bytes | str:
    """The OCSP response (DER) the entry point staples, or a fact saying why there is none:
    NOT_STAPLED, or `could not tell: …`. Touches the network: one connection."""
    offer = Offer("TLSv1.2", _SUITES, sni=sni, status_request=True)
    connection: LineConnection | None = None
    try:
        async with asyncio.timeout(settings.timeout):
            connection = await LineConnection.open(address, port)
            connection.writer.write(client_hello(offer))
            await connection.writer.drain()
            answer, response = await read_stapled(connection.reader, offer)
    except TimeoutError:
        return f"could not tell: no answer within {settings.timeout:g} s"
    except (ScanError, OSError) as error:
        return f"could not tell: {getattr(error, 'reason', error)}"
    finally:
        if connection is not None:
            connection.close()
    if not answer.accepted:
        return (
            f"could not tell: a TLS 1.2 hello was refused ({answer.alert}), and TLS 1.3 "
            "encrypts the stapled response"
        )
    return response if response is not None else NOT_STAPLED
