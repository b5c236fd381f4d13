"""The check catalog: each check defined once, in one entry, and read everywhere.

An entry says what the check is called (`title`: headings, columns, email subjects; it states
what a pass means, so it reads right beside any status), what it asks (`question`), what each
status it can give means, what an operator pastes to fix it, and the function that judges it.
The evaluator, the command line, the dashboard, the alerts, the API and docs/checks.md (generated
by `python -m scripts.checks_doc`) all read CATALOG: a new check is one entry here plus its
evaluator in the module of its family, nothing else.

CATALOG's order is the order of the results in a report, of the dashboard's columns and of the
docs' table. Remediations are Exchange Management Shell first, generic second; `<CAS>`,
`<thumb>` and `mail.contoso.com` are placeholders the operator replaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from scanner._evaluate_certs import (
    check_consistent,
    check_name,
    check_strength,
    check_trusted,
    check_validity,
)
from scanner._evaluate_common import Context, TargetFacts, Verdict
from scanner._evaluate_dns import check_resolves, check_srv
from scanner._evaluate_login import check_tls_login
from scanner._evaluate_pop3 import check_plaintext_login, check_pop3s_available, check_stls
from scanner._evaluate_tls import check_tls_protocols
from scanner._facts import STATUS_RANK, EndpointFacts, Status

Scope = Literal["address", "target"]
_CHECK_ID = re.compile(r"[a-z0-9]+\.[a-z_]+")


@dataclass(frozen=True, kw_only=True)
class CheckSpec:
    """One check. `meanings` maps each status the check can give to what it means there;
    `cleartext_password` marks the checks that fail when a server would take a password in
    the clear (the dashboard's "Accepts passwords in the clear" view)."""

    id: str
    title: str
    question: str
    meanings: Mapping[Status, str]
    remediation: str
    cleartext_password: bool = False
    scope: ClassVar[Scope]

    def __post_init__(self) -> None:
        if not _CHECK_ID.fullmatch(self.id):
            raise ValueError(f"check id {self.id!r} is not family.name")
        unknown = set(self.meanings) - set(STATUS_RANK)
        if unknown or "pass" not in self.meanings:
            raise ValueError(f"{self.id}: meanings need pass and only statuses, not {unknown}")
        if not (self.title and self.question and self.remediation):
            raise ValueError(f"{self.id}: title, question and remediation are required")


@dataclass(frozen=True, kw_only=True)
class AddressCheck(CheckSpec):
    """A check judged on each address; the target's result is the worst over its addresses."""

    evaluate: Callable[[EndpointFacts, Context], Verdict]
    scope: ClassVar[Scope] = "address"


@dataclass(frozen=True, kw_only=True)
class TargetCheck(CheckSpec):
    """A check judged once for the whole target: its name, or all its addresses together."""

    evaluate: Callable[[TargetFacts, Context], Verdict]
    scope: ClassVar[Scope] = "target"


# Changes to Set-PopSettings take effect only after the POP3 services restart, and operators
# who rescan right after a change otherwise see the old behaviour and lose trust in the tool.
_RESTART = (
    "then restart POP3: `Restart-Service MSExchangePOP3; Restart-Service MSExchangePOP3BE` "
    "(Exchange 2013 and later; `Restart-Service MSExchangePOP3` on 2010)."
)
# What the checks that judge a TLS session or its certificate say when there was none.
_NO_TLS_ERROR = "a TLS entry point timed out or broke off, so there was nothing to judge"
_NO_CERTIFICATE = "no certificate was served (no TLS session)"

CATALOG: tuple[CheckSpec, ...] = (
    AddressCheck(
        id="pop3s.available",
        title="POP3 over implicit TLS",
        question="Does implicit TLS on the POP3S port (995) work: TCP, the TLS handshake, and a "
        "`+OK` greeting inside TLS?",
        meanings={
            "pass": "a `+OK` greeting inside TLS",
            "fail": "port closed, plaintext instead of a TLS handshake, the handshake fails, "
            "or no `+OK` greeting",
            "error": "the port timed out or was unreachable",
        },
        remediation=(
            "Exchange: bind a certificate to POP and listen on 995: "
            "`Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP`, "
            "`Set-PopSettings -Server <CAS> -X509CertificateName mail.contoso.com "
            "-SSLBindings 0.0.0.0:995,[::]:995`, " + _RESTART + " A plaintext "
            "`-ERR Connection is closed. 13` on 995 means no certificate matches "
            "X509CertificateName. Check `Get-Service MSExchangePOP3*` and that firewalls pass "
            "TCP 995. Generic: enable the implicit-TLS listener with a valid certificate "
            "(Dovecot: `service pop3-login { inet_listener pop3s { port = 995 } }` with "
            "`ssl_cert`/`ssl_key`)."
        ),
        evaluate=check_pop3s_available,
    ),
    AddressCheck(
        id="pop3.plaintext_login",
        title="No password accepted before TLS",
        question="Would the server accept a password before TLS on the POP3 port (USER/PASS or "
        "SASL PLAIN/LOGIN)?",
        meanings={
            "pass": "refused before TLS",
            "fail": "accepted (`confirmed`, or `likely` when advertised but not exercised); or "
            "the POP3 port answers where the policy allows implicit TLS only",
            "error": "the replies did not show it, or the port timed out",
            "skip": "POP3 port closed",
        },
        remediation=(
            "Exchange: `Set-PopSettings -Server <CAS> -LoginType SecureLogin`, " + _RESTART + " "
            "If policy allows implicit TLS only, remove the :110 entries from "
            "`-UnencryptedOrTLSBindings` and keep `-SSLBindings 0.0.0.0:995,[::]:995` "
            "(see `Get-PopSettings | Format-List *Bindings`). "
            "Generic: refuse passwords before TLS (Dovecot 2.3: `disable_plaintext_auth = yes` "
            "and `ssl = required`; Dovecot 2.4: `auth_allow_cleartext = no`); to close port 110, "
            "set `service pop3-login { inet_listener pop3 { port = 0 } }`."
        ),
        cleartext_password=True,
        evaluate=check_plaintext_login,
    ),
    AddressCheck(
        id="pop3.stls",
        title="STLS offered and works",
        question="Does the POP3 port offer STLS, and does the upgrade to TLS succeed?",
        meanings={
            "pass": "STLS upgrades to TLS",
            "fail": "not offered, refused, or the handshake fails",
            "error": "the upgrade did not complete (timeout, connection lost)",
            "skip": "POP3 port closed",
        },
        remediation=(
            "Exchange: STLS is offered only when a certificate matches X509CertificateName: "
            "`Set-PopSettings -Server <CAS> -X509CertificateName mail.contoso.com` or "
            "`Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP`, " + _RESTART + " "
            "Generic: enable TLS on the cleartext listener (Dovecot: `ssl = yes` or "
            "`ssl = required` with `ssl_cert`/`ssl_key`), or close port 110 and use 995 only "
            "(RFC 8314)."
        ),
        evaluate=check_stls,
    ),
    AddressCheck(
        id="pop3.tls_login",
        title="Monitoring login over TLS",
        question="Does the monitoring account log in over TLS (sent only to a trusted "
        "certificate that covers the name)?",
        meanings={
            "pass": "the login was accepted (an `[IN-USE]` reply too: the password was right, "
            "the mailbox is locked)",
            "fail": "the server rejected the login (its reply is quoted)",
            "error": "the attempt could not finish (timeout, dropped connection, `[SYS/TEMP]`, "
            "`[LOGIN-DELAY]`)",
            "skip": "no credentials set, no TLS entry point worked, another address rejected "
            "the login, or the certificate is not trusted (then the password is not sent)",
        },
        remediation=(
            "Check the monitoring account's password (stored for this server in PopCompliance, "
            "or `POPC_LOGIN_PASSWORD` for the command line). "
            "Exchange: make sure the mailbox may use POP3: `Set-CASMailbox <user> -PopEnabled "
            "$true` (check with `Get-CASMailbox <user> | Format-List PopEnabled`), and that the "
            "account is neither locked out nor disabled (`Get-ADUser <user> -Properties "
            "LockedOut,Enabled`, `Unlock-ADAccount <user>`). Generic: check the account in the "
            "server's password database (Dovecot: `doveadm auth test <user>`) and its log for "
            "the refused login."
        ),
        evaluate=check_tls_login,
    ),
    AddressCheck(
        id="tls.protocols",
        title="Only TLS 1.2 or newer",
        question="Are only the versions from the policy's minimum (TLS 1.2) up accepted, on "
        "every TLS entry point (995 and after STLS)?",
        meanings={
            "pass": "only versions at or above the minimum, TLS 1.2 or later among them",
            "fail": "SSLv3, TLS 1.0 or TLS 1.1 (below the minimum) accepted, or no TLS 1.2+",
            "error": "no version could be tested, or " + _NO_TLS_ERROR,
            "skip": "no TLS session was established",
        },
        remediation=(
            "Exchange (Schannel): for each of SSL 3.0, TLS 1.0 and TLS 1.1 set `Enabled`=0 and "
            "`DisabledByDefault`=1 under "
            "`HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\"
            "<version>\\Server`, make sure TLS 1.2 is enabled there, and reboot; the CSS-Exchange "
            "HealthChecker script reports the result. Generic: accept TLS 1.2 and later only "
            "(Dovecot: `ssl_min_protocol = TLSv1.2`), per RFC 8996 and RFC 8997."
        ),
        evaluate=check_tls_protocols,
    ),
    AddressCheck(
        id="cert.trusted",
        title="Certificate chain trusted",
        question="Does the served chain validate to the policy's trust store (system CAs plus "
        "its CA bundle)?",
        meanings={
            "pass": "the chain validates (dates are `cert.validity`'s to judge)",
            "fail": "self-signed, unknown issuer, or incomplete chain (missing intermediate)",
            "error": "the trust check could not run (an empty CA bundle), or " + _NO_TLS_ERROR,
            "skip": _NO_CERTIFICATE,
        },
        remediation=(
            'Exchange: replace the self-signed "Microsoft Exchange" certificate with one from a '
            "CA your clients trust: `New-ExchangeCertificate -GenerateRequest -SubjectName "
            "CN=mail.contoso.com -DomainName mail.contoso.com -PrivateKeyExportable $true`, "
            "then `Import-ExchangeCertificate` and `Enable-ExchangeCertificate -Thumbprint "
            "<thumb> -Services POP`; install the issuing intermediate in the computer's "
            "Intermediate Certification Authorities store so the full chain is served; "
            + _RESTART
            + " Generic: serve leaf plus intermediates (Dovecot: `ssl_cert` holds the full "
            "chain). For an internal CA, add its root to the policy's CA bundle."
        ),
        evaluate=check_trusted,
    ),
    AddressCheck(
        id="cert.name",
        title="Certificate covers the name",
        question="Does the certificate cover the name users connect to (SAN; CN only without "
        "SAN; the IP address when there is no name)?",
        meanings={
            "pass": "the name is covered",
            "fail": "the name is not covered",
            "error": _NO_TLS_ERROR,
            "skip": _NO_CERTIFICATE,
        },
        remediation=(
            "Exchange: bind a certificate whose SAN holds the name users connect to: "
            "`Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP` or "
            "`Set-PopSettings -Server <CAS> -X509CertificateName mail.contoso.com`, "
            + _RESTART
            + " Generic: issue a certificate with that name in subjectAltName and serve it, or "
            "point clients at a name the certificate covers."
        ),
        evaluate=check_name,
    ),
    AddressCheck(
        id="cert.validity",
        title="Certificate valid with margin",
        question="Are the leaf and the intermediates served with it inside their validity, "
        "with the policy's margin?",
        meanings={
            "pass": "more than the policy's warn days left",
            "warn": "the warn days or fewer left",
            "fail": "expired, not yet valid, or the policy's critical days or fewer left",
            "error": _NO_TLS_ERROR,
            "skip": _NO_CERTIFICATE,
        },
        remediation=(
            "Exchange: find it with `Get-ExchangeCertificate | Format-List "
            "Thumbprint,Subject,NotAfter,Services`, renew it (`Get-ExchangeCertificate "
            "-Thumbprint <thumb> | New-ExchangeCertificate -GenerateRequest`, then "
            "`Import-ExchangeCertificate`), bind the new one with `Enable-ExchangeCertificate "
            "-Thumbprint <new> -Services POP`, "
            + _RESTART
            + ' For "not yet valid", check the server and CA clocks. '
            "Generic: renew before expiry, ideally automatically (ACME), and reload the server."
        ),
        evaluate=check_validity,
    ),
    AddressCheck(
        id="cert.strength",
        title="Strong key and signature",
        question="RSA ≥ 2048 or EC ≥ 256 bits, and no SHA-1/MD5 signature, for the leaf and "
        "the intermediates served with it?",
        meanings={
            "pass": "strong keys and signatures",
            "fail": "a weaker key, a DSA key, or a SHA-1/MD5 signature",
            "error": _NO_TLS_ERROR,
            "skip": _NO_CERTIFICATE,
        },
        remediation=(
            "Exchange: request a new certificate with an RSA key of at least 2048 bits and a "
            "SHA-256 signature (`New-ExchangeCertificate -GenerateRequest -KeySize 2048 ...`), "
            "import it and `Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP`; the "
            "default self-signed Exchange certificate is signed with SHA-1 and must not serve "
            "POP. " + _RESTART + " Generic: RSA 2048+ or ECDSA P-256+, SHA-256+ signatures, "
            "intermediates likewise."
        ),
        evaluate=check_strength,
    ),
    TargetCheck(
        id="cert.consistent",
        title="Same certificate everywhere",
        question="Do all addresses and both TLS entry points serve the same certificate?",
        meanings={
            "pass": "one certificate everywhere",
            "warn": "different certificates (each is named with where it is served)",
            "error": "could not compare: " + _NO_TLS_ERROR,
            "skip": "fewer than two TLS entry points served a certificate",
        },
        remediation=(
            "Exchange: serve one certificate from every server behind the name and on both 995 "
            "and STLS: `Export-ExchangeCertificate` it from one server, "
            "`Import-ExchangeCertificate` on the others, `Enable-ExchangeCertificate "
            "-Thumbprint <thumb> -Services POP` and the same `Set-PopSettings "
            "-X509CertificateName mail.contoso.com` everywhere, "
            + _RESTART
            + " Generic: deploy the same certificate to every node and listener."
        ),
        evaluate=check_consistent,
    ),
    TargetCheck(
        id="dns.resolves",
        title="Name resolves",
        question="Does the service name resolve (A/AAAA)?",
        meanings={
            "pass": "it has addresses",
            "fail": "NXDOMAIN, or no A/AAAA record",
            "error": "the lookup failed (SERVFAIL, timeout)",
            "skip": "the target is an IP address with no name",
        },
        remediation=(
            "Publish A/AAAA records for the service name (Windows DNS: "
            "`Add-DnsServerResourceRecordA -ZoneName contoso.com -Name mail -IPv4Address <ip>`), "
            "or scan the name users really connect to (`--name`). Generic: add the records in "
            "the authoritative zone."
        ),
        evaluate=check_resolves,
    ),
    TargetCheck(
        id="dns.srv",
        title="RFC 6186 SRV records",
        question="RFC 6186: does `_pop3s._tcp.<domain>` point here, and is `_pop3._tcp` absent "
        "or `.`?",
        meanings={
            "pass": "yes",
            "warn": "`_pop3s._tcp` missing or pointing elsewhere, or `_pop3._tcp` advertising "
            "cleartext",
            "error": "the SRV lookup failed",
            "skip": "no domain to look in",
        },
        remediation=(
            "Exchange does not publish SRV records; add them in DNS (RFC 6186). Windows DNS: "
            "`Add-DnsServerResourceRecord -Srv -ZoneName contoso.com -Name _pop3s._tcp "
            "-DomainName mail.contoso.com -Priority 0 -Weight 1 -Port 995`, and remove "
            '`_pop3._tcp` or publish it with target `.` ("not offered"). Generic zone file: '
            "`_pop3s._tcp IN SRV 0 1 995 mail.contoso.com.` and `_pop3._tcp IN SRV 0 0 0 .`."
        ),
        evaluate=check_srv,
    ),
)

CHECKS: Mapping[str, CheckSpec] = {spec.id: spec for spec in CATALOG}
CHECK_IDS: tuple[str, ...] = tuple(CHECKS)
ADDRESS_CHECK_IDS: tuple[str, ...] = tuple(s.id for s in CATALOG if s.scope == "address")
TARGET_CHECK_IDS: tuple[str, ...] = tuple(s.id for s in CATALOG if s.scope == "target")
CLEARTEXT_PASSWORD_CHECK_IDS: tuple[str, ...] = tuple(s.id for s in CATALOG if s.cleartext_password)


def check_title(check_id: str) -> str:
    """The check's title; the id itself for one the catalog no longer has (kept history)."""
    spec = CHECKS.get(check_id)
    return spec.title if spec else check_id
