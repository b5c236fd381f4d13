"""Facts: what a server did when we talked to it, as frozen values with no judgement in them.

Every connection-level fact says first whether we could talk to the server at all
(`outcome`), separately from what we found. "The server refused plaintext login" and "we timed
out" are different facts, and mixing them is what sends false regression alerts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from scanner._ntlm import NtlmChallenge
from scanner._services import ClientProtocol

if TYPE_CHECKING:
    # Only for ScanReport's annotation: the target module holds facts of its own.
    from scanner._target import Target


# ok: the conversation finished. closed: the port refused the connection (nothing listens).
# unreachable: no route / host down. timeout: the deadline passed. protocol_error: the server
# spoke, but not POP3 as we know it. tls_error: the TLS handshake failed.
Outcome = Literal["ok", "closed", "unreachable", "timeout", "protocol_error", "tls_error"]
Status = Literal["pass", "warn", "fail", "error", "skip"]
LoginVerdict = Literal["accepted", "refused", "unknown"]
Certainty = Literal["confirmed", "likely", "unknown"]

# Worst last: the status of several results is the one with the highest rank. `error` ranks
# below `fail` so that "could not determine" on one address never hides a failure on another,
# and above `warn` so that a known-good summary is never shown for an unknown state.
STATUS_RANK: dict[str, int] = {"skip": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}
# Statuses that leave nothing to fix: they carry no remediation and never alert.
PASSING: frozenset[str] = frozenset({"pass", "skip"})


@dataclass(frozen=True)
class CertificateFacts:
    """One certificate as served. Times are timezone-aware UTC."""

    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    serial: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    key_type: str
    key_bits: int
    signature_hash: str | None
    self_signed: bool
    is_ca: bool
    pem: str


@dataclass(frozen=True)
class TlsFacts:
    """One TLS session: what was negotiated and the chain as served (leaf first)."""

    version: str
    cipher: str
    chain: tuple[CertificateFacts, ...]

    @property
    def leaf(self) -> CertificateFacts | None:
        return self.chain[0] if self.chain else None


@dataclass(frozen=True)
class TlsSupport:
    """What a TLS entry point accepts, from protocol-level hellos (never limited by the local
    OpenSSL): each version SSLv2 … TLSv1.3 (True/False; None = could not be tested), the
    suites accepted per version by IANA name (in the server's order when it enforces one),
    whether it enforces its own order, its key exchange groups (its preference first), the
    size of its finite-field DH prime, TLS compression and RFC 5746 secure renegotiation.
    `error` says what went wrong when a part could not be determined; `hellos` counts the
    connections it took. `measured_at` is when it was enumerated (an earlier scan's, when
    reused), `negotiated` what a full handshake negotiated then ("TLSv1.3 TLS_AES_…"), by
    which a reused result is known to still describe the same configuration.
    `answers_long_hellos`: a hello of more than 126 suites got a ServerHello, so the server is
    not one of those that refuse long hellos; a later check may then take a refused long hello
    at its word instead of offering its suites again in parts."""

    accepted_versions: dict[str, bool | None]
    cipher_suites: dict[str, tuple[str, ...]]
    server_order: bool | None = None
    groups: tuple[str, ...] = ()
    dh_bits: int | None = None
    compression: bool | None = None
    secure_renegotiation: bool | None = None
    error: str | None = None
    hellos: int = 0
    duration_ms: int = 0
    measured_at: datetime | None = None
    negotiated: str | None = None
    answers_long_hellos: bool = False


@dataclass(frozen=True)
class StlsFacts:
    """The STLS upgrade on the cleartext port, and CAPA inside TLS."""

    outcome: Outcome
    error: str | None = None
    reply: str | None = None
    tls: TlsFacts | None = None
    capabilities: tuple[str, ...] | None = None
    support: TlsSupport | None = None


@dataclass(frozen=True)
class Pop3Facts:
    """The cleartext POP3 port: greeting, CAPA, the plaintext-login probe and STLS.

    `outcome` is about the login-probe connection. `plaintext_login` is what the server would
    do with a password sent before TLS, `evidence` quotes the reply that shows it, and
    `certainty` says how sure we are (accepted USER is confirmed; an advertised mechanism we
    could not exercise is likely).
    """

    port: int
    outcome: Outcome
    error: str | None = None
    greeting: str | None = None
    capabilities: tuple[str, ...] | None = None
    user_reply: str | None = None
    auth_replies: dict[str, str] = field(default_factory=dict)
    plaintext_login: LoginVerdict = "unknown"
    certainty: Certainty = "unknown"
    evidence: str | None = None
    quit_reply: str | None = None
    stls: StlsFacts | None = None

    @property
    def upgrade(self) -> StlsFacts | None:
        """The STLS upgrade, under the name every protocol's cleartext facts share."""
        return self.stls


@dataclass(frozen=True)
class CleartextFacts:
    """The cleartext port of IMAP4 (143) or SMTP submission (587): the greeting, the
    capabilities (IMAP CAPABILITY, or the EHLO keywords), the plaintext-login probe and the
    STARTTLS upgrade.

    `auth_replies` maps each command we sent (without its arguments: `LOGIN`,
    `AUTHENTICATE PLAIN`, `AUTH PLAIN`, `*`) to the server's reply. `plaintext_login`,
    `certainty` and `evidence` are as for POP3. `goodbye` is the reply to LOGOUT or QUIT
    (Exchange's IMAP LOGOUT names its version).
    """

    port: int
    outcome: Outcome
    error: str | None = None
    greeting: str | None = None
    capabilities: tuple[str, ...] | None = None
    auth_replies: dict[str, str] = field(default_factory=dict)
    plaintext_login: LoginVerdict = "unknown"
    certainty: Certainty = "unknown"
    evidence: str | None = None
    goodbye: str | None = None
    starttls: StlsFacts | None = None

    @property
    def upgrade(self) -> StlsFacts | None:
        return self.starttls


@dataclass(frozen=True)
class NtlmFacts:
    """`AUTH NTLM` before TLS on one protocol's cleartext port: the NEGOTIATE we sent and what
    the server's CHALLENGE disclosed (None when it sent none: `error` says why)."""

    protocol: str
    port: int
    outcome: Outcome
    error: str | None = None
    challenge: NtlmChallenge | None = None


@dataclass(frozen=True)
class ImplicitTlsFacts:
    """Implicit TLS on a TLS port (995, 993, 465): the handshake, then the greeting inside TLS.

    `plaintext_reply` holds what a server sent in the clear instead of a TLS handshake
    (Exchange with no bound certificate says `-ERR Connection is closed. 13`).
    """

    port: int
    outcome: Outcome
    error: str | None = None
    tls: TlsFacts | None = None
    greeting: str | None = None
    plaintext_reply: str | None = None
    support: TlsSupport | None = None


@dataclass(frozen=True)
class TlsLoginFacts:
    """The one login with the monitoring account, inside TLS (never its password).

    `entry` is how TLS was reached: `pop3s` (implicit TLS) or `stls` (the POP3 port upgraded).
    `mechanism` is `USER/PASS` or `AUTH PLAIN`, or None when nothing was sent: then `withheld`
    says why (the certificate was not trusted, or no password mechanism was offered).
    `accepted` is the server's answer, None when there was none; `reply` quotes it, with the
    credentials masked should the server echo them.
    """

    entry: Literal["pop3s", "stls"]
    outcome: Outcome
    error: str | None = None
    mechanism: str | None = None
    accepted: bool | None = None
    reply: str | None = None
    withheld: str | None = None

    @property
    def response_code(self) -> str | None:
        """The RFC 2449 / RFC 3206 response code of the reply (`-ERR [CODE] text`), upper case."""
        match = _RESPONSE_CODE.match(self.reply or "")
        return match.group(1).upper() if match else None

    @property
    def password_refused(self) -> bool:
        """The server judged the password and said no. Not so for `[IN-USE]` (sent only after
        successful authentication: the mailbox is locked) nor for the codes of a server that
        did not judge it now (NOT_JUDGED)."""
        return self.accepted is False and self.response_code not in {"IN-USE", *NOT_JUDGED}


# `-ERR [CODE] text` (RFC 2449 §8, RFC 3206).
_RESPONSE_CODE = re.compile(r"-ERR \[([A-Z/-]+)\]", re.IGNORECASE)
# Codes that say the credentials were never judged: the server could not check them now
# (SYS/TEMP, SYS/PERM) or refused to try so soon after the last login (LOGIN-DELAY).
NOT_JUDGED = frozenset({"SYS/TEMP", "SYS/PERM", "LOGIN-DELAY"})


RevocationStatus = Literal["good", "revoked", "unknown", "error"]
LookupMethod = Literal["ocsp", "crl", "stapled"]


@dataclass(frozen=True)
class RevocationLookup:
    """One answer about a leaf's revocation: from its OCSP responder (`ocsp`), its CRL
    (`crl`), or the OCSP response the server stapled into a TLS 1.2 handshake (`stapled`,
    `url` then names the entry point). `status` is good, revoked or unknown as the CA signed
    it, or error when no signed, fresh answer came (`error` says why, in operator words).
    `this_update` and `next_update` are the answer's own; `revoked_at` and `reason` are set
    when revoked. `cached` says the answer was kept from an earlier lookup (until its
    nextUpdate) instead of fetched again."""

    method: LookupMethod
    url: str
    status: RevocationStatus
    this_update: datetime | None = None
    next_update: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    error: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class RevocationFacts:
    """What was learnt about the revocation of one served leaf (by `fingerprint_sha256`).

    `ocsp_urls` and `crl_urls` are what the leaf publishes (its AIA OCSP responders and its
    CRL distribution points); `issuer` is the subject of the issuer certificate the answers
    were checked against (served, or found in the trust store), None when none was found.
    `lookups` holds one answer per method asked; `stapled` says per TLS entry point whether
    the server stapled an OCSP response (`stapled`, `not stapled`, or why it could not be
    told). `error` says why nothing could be asked (no issuer certificate, a self-signed
    leaf)."""

    fingerprint_sha256: str
    ocsp_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()
    issuer: str | None = None
    lookups: tuple[RevocationLookup, ...] = ()
    stapled: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class TranscriptFacts:
    """The conversation of one probe connection, bounded and redacted (scanner._transcript):
    `lines` each start with `C: ` (we sent), `S: ` (the server answered) or `N: ` (a note of
    ours: the TLS handshake, the step that failed). `door` is the port's name (pop3, pop3s,
    imap, …), `purpose` what the connection was for (login, upgrade, implicit, ntlm,
    monitor)."""

    id: str
    address: str
    door: str
    port: int
    purpose: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class EndpointFacts:
    """Everything learnt about one address of the target, per declared protocol: the facts of
    a protocol the target does not declare are None. `tls_login` is None when no login was
    attempted: no credentials, or no POP3 TLS entry point worked. `ntlm` has one entry per
    protocol whose cleartext port offered NTLM. `login_type` is Exchange's POP3 LoginType and
    `imap_login_type` its IMAP one, inferred from what the ports said. `transcripts` are the
    probe connections' conversations (the JSON lists them at its top level). `revocation` has
    one entry per distinct leaf certificate the address served."""

    address: str
    pop3: Pop3Facts | None
    pop3s: ImplicitTlsFacts | None
    product: str | None = None
    login_type: str | None = None
    duration_ms: int = 0
    tls_login: TlsLoginFacts | None = None
    imap: CleartextFacts | None = None
    imaps: ImplicitTlsFacts | None = None
    submission: CleartextFacts | None = None
    submissions: ImplicitTlsFacts | None = None
    ntlm: tuple[NtlmFacts, ...] = ()
    imap_login_type: str | None = None
    transcripts: tuple[TranscriptFacts, ...] = ()
    revocation: tuple[RevocationFacts, ...] = ()

    def doors(
        self, protocol: ClientProtocol
    ) -> tuple[Pop3Facts | CleartextFacts | None, ImplicitTlsFacts | None]:
        """The protocol's cleartext and implicit-TLS facts (POP3's, IMAP's, submission's)."""
        return getattr(self, protocol.name), getattr(self, protocol.implicit_tls_name)


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class DnsFacts:
    """Name resolution. `outcome` is ok, nxdomain, no_address, servfail, timeout, error, or
    not_applicable when the target is an IP address. SRV lookups are RFC 6186's (and RFC
    8314's `_submissions._tcp`), made in `srv_domain` for each declared protocol; None lists
    mean the lookup failed (`srv_error` says why) or was not made (protocol not declared)."""

    name: str | None
    outcome: str
    addresses: tuple[str, ...] = ()
    error: str | None = None
    srv_domain: str | None = None
    srv_pop3s: tuple[SrvRecord, ...] | None = None
    srv_pop3: tuple[SrvRecord, ...] | None = None
    srv_error: str | None = None
    srv_imaps: tuple[SrvRecord, ...] | None = None
    srv_imap: tuple[SrvRecord, ...] | None = None
    srv_submissions: tuple[SrvRecord, ...] | None = None
    srv_submission: tuple[SrvRecord, ...] | None = None


@dataclass(frozen=True)
class CheckResult:
    """One verdict of the check catalog. `address` names the address it is about (the worst
    one, for a target-level result); None for checks about the name as a whole."""

    id: str
    status: Status
    summary: str
    remediation: str = ""
    address: str | None = None


@dataclass(frozen=True)
class ScanReport:
    """The facts and verdicts for one target. `checks` has one entry per check id (worst over
    addresses); `address_checks` has one per address and check, for per-address history."""

    target: Target
    dns: DnsFacts
    endpoints: tuple[EndpointFacts, ...]
    checks: tuple[CheckResult, ...]
    address_checks: tuple[CheckResult, ...]
    compliant: bool | None
    started_at: datetime
    duration_ms: int
    # Set when the scan of this target stopped on an error nobody foresaw (a fault of ours):
    # then every check is `error` and says so, and the other targets' scans went on.
    failure: str | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(endpoint.address for endpoint in self.endpoints)

    @property
    def has_fail(self) -> bool:
        return any(check.status == "fail" for check in self.checks)

    @property
    def has_error(self) -> bool:
        return any(check.status == "error" for check in self.checks)


def worst_status(statuses: list[Status]) -> Status:
    """The worst of several statuses; skip when there are none."""
    return max(statuses, key=STATUS_RANK.__getitem__, default="skip")


def compliance(checks: tuple[CheckResult, ...]) -> bool | None:
    """True when nothing fails or errors, False when anything fails, None (unknown) otherwise."""
    return compliance_of(check.status for check in checks)


def compliance_of(statuses: Iterable[str]) -> bool | None:
    """`compliance` of bare statuses (the dashboard keeps statuses, not results): a failure
    outweighs an error, because one known failure is enough to say non-compliant."""
    found = set(statuses)
    if "fail" in found:
        return False
    if "error" in found:
        return None
    return True
