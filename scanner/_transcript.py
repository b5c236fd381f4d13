"""The conversation of one probe connection, kept as the evidence its checks rest on: what we
sent (`C:`), what the server answered (`S:`), and notes of our own (`N:`: the TLS handshake,
the step that failed).

Bounded, because a hostile server must not bloat the stored facts: at most MAX_LINES lines of
the conversation per connection, MAX_TEXT characters per line (control characters escaped) and
MAX_CHARS per connection; what does not fit is counted, not kept. Our own notes are a few per
connection by construction and always kept, trimmed like any line.

Redacted before it is stored, so no secret can reach the facts however a probe sends it: the
arguments of PASS, LOGIN (but for the made-up user name our probes use), AUTH/AUTHENTICATE's
initial response, every line answering a SASL continuation but `*` (credentials, and NTLM
blobs), and every line a caller marks as carrying credentials. Secrets a caller registers with
`conceal` (the monitoring account's name, password and PLAIN response) are also replaced
wherever the server echoes them. What the server sends is kept, SASL challenges included.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field

from scanner._certs import parse_certificate
from scanner._errors import ScanError, escape_controls
from scanner._facts import TranscriptFacts

MAX_LINES = 40
MAX_TEXT = 200
MAX_CHARS = 3000
REDACTED = "[redacted]"
# Words our probes make up so that they can never be anyone's (scanner._pop3, scanner._imap).
PROBE_WORD = "popcompliance-probe-"
# How many words of a command that carries credentials are kept: the verb, and for SASL the
# mechanism. The rest are its arguments, redacted.
_KEPT_WORDS = {"USER": 1, "PASS": 1, "APOP": 1, "LOGIN": 1, "AUTH": 2, "AUTHENTICATE": 2}
# A SASL continuation request: POP3's and IMAP's `+ data`, SMTP's `334 data`.
_CONTINUATION = re.compile(r"\+( |$)|334( |$)")
# IMAP puts a tag before each command (`p1 LOGIN ...`).
_TAG = re.compile(r"p\d+")
HANDSHAKE = "TLS handshake"

SENT, RECEIVED, NOTE = "C", "S", "N"


def trimmed(text: str) -> str:
    """One line as stored: control characters escaped, at most MAX_TEXT characters."""
    text = escape_controls(text)
    return text[:MAX_TEXT] + "…" if len(text) > MAX_TEXT else text


def redacted_command(line: str, *, secret: bool = False) -> str:
    """A command as stored: the arguments of one that carries credentials replaced by
    REDACTED (all of them when `secret`, but for our own probe words otherwise)."""
    words = line.split(" ")
    tag = [words.pop(0)] if len(words) > 1 and _TAG.fullmatch(words[0]) else []
    kept = _KEPT_WORDS.get(words[0].upper())
    if kept is None:
        return REDACTED if secret else line
    head, arguments = words[:kept], words[kept:]
    if not arguments:
        return line
    shown = [word if word.startswith(PROBE_WORD) and not secret else REDACTED for word in arguments]
    # Consecutive redactions say one thing: arguments were withheld (not how many there were).
    collapsed = [w for n, w in enumerate(shown) if not (w == REDACTED and shown[n - 1 : n] == [w])]
    return " ".join([*tag, *head, *collapsed])


def handshake_line(ssl_object: ssl.SSLObject | None) -> str:
    """`TLS handshake: TLSv1.3 TLS_AES_256_GCM_SHA384, certificate CN=…, valid until
    2027-06-01` (the chain itself is in the facts)."""
    if ssl_object is None:
        return f"{HANDSHAKE}: completed (no session details)"
    cipher = ssl_object.cipher()
    said = f"{HANDSHAKE}: {ssl_object.version() or '?'} {cipher[0] if cipher else '?'}"
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return f"{said}, no certificate"
    try:
        leaf = parse_certificate(der)
    except ValueError:
        return f"{said}, a certificate that could not be parsed"
    until = leaf.not_after.date().isoformat()
    return f"{said}, certificate {leaf.subject or '(no subject)'}, valid until {until}"


def error_line(error: ScanError) -> str:
    """The note a failed step leaves: TLS failures read as the handshake's outcome."""
    if error.outcome == "tls_error":
        return f"{HANDSHAKE} failed: {error}"
    return f"stopped: {error}"


@dataclass
class Transcript:
    """The recorder of one connection (`door` is pop3, pop3s, imap, …; `purpose` what the
    probe was for: login, upgrade, implicit, ntlm, monitor). Not thread-safe; one connection
    is one task."""

    address: str
    door: str
    port: int
    purpose: str
    lines: list[str] = field(default_factory=list)
    omitted: int = 0
    _chars: int = 0
    _concealed: list[str] = field(default_factory=list)
    _in_sasl: bool = False

    def conceal(self, *secrets: str) -> None:
        """Replace these strings wherever they would be stored, longest first."""
        self._concealed = sorted({*self._concealed, *filter(None, secrets)}, key=len, reverse=True)

    def sent(self, line: str, *, secret: bool = False) -> None:
        """A line we sent; a credential-bearing one (`secret`), or any answer to a SASL
        continuation but the cancelling `*`, is stored redacted."""
        answering = self._in_sasl and line.strip() != "*"
        self._in_sasl = False
        if answering:
            self._keep(SENT, REDACTED)
        else:
            self._keep(SENT, redacted_command(self._scrub(line), secret=secret))

    def received(self, raw: bytes) -> None:
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        self._in_sasl = bool(_CONTINUATION.match(text))
        self._keep(RECEIVED, self._scrub(text))

    def note(self, text: str) -> None:
        """A note of our own: always kept (a few per connection), trimmed."""
        self.lines.append(f"{NOTE}: {trimmed(self._scrub(text))}")

    def _keep(self, direction: str, text: str) -> None:
        text = trimmed(text)
        if len(self.lines) >= MAX_LINES or self._chars + len(text) > MAX_CHARS:
            self.omitted += 1
            return
        self._chars += len(text)
        self.lines.append(f"{direction}: {text}")

    def _scrub(self, text: str) -> str:
        for secret in self._concealed:
            text = text.replace(secret, REDACTED)
        return text

    def facts(self, transcript_id: str) -> TranscriptFacts:
        lines = list(self.lines)
        if self.omitted:
            limits = f"{MAX_LINES} lines and {MAX_CHARS} characters per connection"
            lines.append(f"{NOTE}: {self.omitted} more lines not kept (the limits: {limits})")
        return TranscriptFacts(
            id=transcript_id,
            address=self.address,
            door=self.door,
            port=self.port,
            purpose=self.purpose,
            lines=tuple(lines),
        )
