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
from scanner._facts import (
    PASSING,
    STATUS_RANK,
    CertificateFacts,
    CheckResult,
    DnsFacts,
    EndpointFacts,
    Pop3Facts,
    Pop3sFacts,
    ScanReport,
    SrvRecord,
    StlsFacts,
    TlsFacts,
    TlsLoginFacts,
    compliance,
    compliance_of,
    worst_status,
)
from scanner._hints import login_type_label
from scanner._probe import scan, scan_async
from scanner._report import report_to_dict
from scanner._target import TLS_VERSIONS, Credentials, Policy, Settings, Target

__all__ = [
    "ADDRESS_CHECK_IDS",
    "CATALOG",
    "CHECKS",
    "CHECK_IDS",
    "CLEARTEXT_PASSWORD_CHECK_IDS",
    "PASSING",
    "STATUS_RANK",
    "TARGET_CHECK_IDS",
    "TLS_VERSIONS",
    "CertificateFacts",
    "CheckResult",
    "CheckSpec",
    "Credentials",
    "DnsFacts",
    "EndpointFacts",
    "Policy",
    "Pop3Facts",
    "Pop3sFacts",
    "ScanError",
    "ScanReport",
    "Settings",
    "SrvRecord",
    "StlsFacts",
    "Target",
    "TlsFacts",
    "TlsLoginFacts",
    "check_title",
    "compliance",
    "compliance_of",
    "exit_status",
    "login_type_label",
    "report_to_dict",
    "scan",
    "scan_async",
    "whole_days_left",
    "worst_status",
]
