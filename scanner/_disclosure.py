"""AUTH NTLM before TLS (check auth.ntlm_disclosure): what the server's NTLM challenge tells
anyone who asks. Sent: an NTLMSSP NEGOTIATE that names no user, no domain and no workstation,
then `*` to cancel once the CHALLENGE is in; nothing else, and no credential ever. One
connection per protocol, and only where the cleartext port lists NTLM."""

from __future__ import annotations

import base64
import binascii

from scanner._errors import ProtocolError, ScanError
from scanner._facts import NtlmFacts
from scanner._ntlm import negotiate_message, parse_challenge
from scanner._session import AddressSession, Dialect


async def probe_ntlm(session: AddressSession, dialect: Dialect) -> NtlmFacts:
    """The CHALLENGE of the protocol's cleartext port, decoded; trouble is recorded."""
    port, _ = session.target.ports(dialect.protocol)
    negotiate = base64.b64encode(negotiate_message()).decode("ascii")
    name = dialect.protocol.name
    try:
        text = await session.converse(
            port, lambda c: dialect.ntlm_challenge(c, negotiate), kind=dialect.kind, record="ntlm"
        )
        challenge = parse_challenge(_decoded(text))
    except ScanError as exc:
        return NtlmFacts(name, port, exc.outcome, str(exc))  # type: ignore[arg-type]
    except ValueError as exc:
        return NtlmFacts(name, port, "protocol_error", f"the NTLM challenge is malformed: {exc}")
    return NtlmFacts(name, port, "ok", challenge=challenge)


def _decoded(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("reply to the NTLM NEGOTIATE", "the challenge is not base64") from None
