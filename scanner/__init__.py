"""PopCompliance's outside-in POP3 posture probe: a pure library (it never imports Django).

Plain values in, frozen dataclasses out: build a `Target`, `Settings` and `Policy`, call
`scan(targets, settings, policy)` (or `await scan_async(...)`), read the `ScanReport`s.
"""

from scanner._catalog import (
    ADDRESS_CHECK_IDS,
    CATALOG,
    CHECK_IDS,
    CHECKS,
    CLEARTEXT_PASSWORD_CHECK_IDS,
    TARGET_CHECK_IDS,
    CheckSpec,
    check_title,
)
from scanner._certs import whole_days_left
from scanner._cli import exit_status
from scanner._errors import ScanError
from scanner._evidence import evidence_for
from scanner._facts import (
    PASSING,
    STATUS_RANK,
    CertificateFacts,
    CheckResult,
    CleartextFacts,
    DnsFacts,
    EndpointFacts,
    ImplicitTlsFacts,
    NtlmFacts,
    Pop3Facts,
    RevocationFacts,
    RevocationLookup,
    ScanReport,
    SrvRecord,
    StlsFacts,
    TlsFacts,
    TlsLoginFacts,
    TlsSupport,
    TranscriptFacts,
    compliance,
    compliance_of,
    worst_status,
)
from scanner._hints import login_type_label
from scanner._ntlm import NtlmChallenge
from scanner._probe import scan, scan_async
from scanner._profiles import DEFAULT_PROFILE, PROFILES, TlsProfile, profile_named
from scanner._report import (
    report_to_dict,
    revocation_from_dict,
    revocation_lines,
    support_from_dict,
)
from scanner._services import (
    CLIENT_PROTOCOLS,
    DEFAULT_PROTOCOLS,
    PROTOCOL_BY_NAME,
    ClientProtocol,
    parse_protocols,
)
from scanner._suites import PROTOCOL_LABEL, PROTOCOLS
from scanner._target import Credentials, EarlierSupport, Policy, Settings, Target

__all__ = [
    "ADDRESS_CHECK_IDS",
    "CATALOG",
    "CHECKS",
    "CHECK_IDS",
    "CLEARTEXT_PASSWORD_CHECK_IDS",
    "CLIENT_PROTOCOLS",
    "DEFAULT_PROFILE",
    "DEFAULT_PROTOCOLS",
    "PASSING",
    "PROFILES",
    "PROTOCOLS",
    "PROTOCOL_BY_NAME",
    "PROTOCOL_LABEL",
    "STATUS_RANK",
    "TARGET_CHECK_IDS",
    "CertificateFacts",
    "CheckResult",
    "CheckSpec",
    "CleartextFacts",
    "ClientProtocol",
    "Credentials",
    "DnsFacts",
    "EarlierSupport",
    "EndpointFacts",
    "ImplicitTlsFacts",
    "NtlmChallenge",
    "NtlmFacts",
    "Policy",
    "Pop3Facts",
    "RevocationFacts",
    "RevocationLookup",
    "ScanError",
    "ScanReport",
    "Settings",
    "SrvRecord",
    "StlsFacts",
    "Target",
    "TlsFacts",
    "TlsLoginFacts",
    "TlsProfile",
    "TlsSupport",
    "TranscriptFacts",
    "check_title",
    "compliance",
    "compliance_of",
    "evidence_for",
    "exit_status",
    "login_type_label",
    "parse_protocols",
    "profile_named",
    "report_to_dict",
    "revocation_from_dict",
    "revocation_lines",
    "scan",
    "scan_async",
    "support_from_dict",
    "whole_days_left",
    "worst_status",
]
