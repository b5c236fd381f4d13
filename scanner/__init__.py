"""PopCompliance's outside-in POP3 posture probe: a pure library (it never imports Django).

Plain values in, frozen dataclasses out: build a `Target`, `Settings` and `Policy`, call
`scan(targets, settings, policy)` (or `await scan_async(...)`), read the `ScanReport`s.
"""

from scanner._errors import ScanError
from scanner._facts import (
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
    compliance,
    worst_status,
)
from scanner._target import Policy, Settings, Target

__all__ = [
    "CertificateFacts",
    "CheckResult",
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
    "compliance",
    "worst_status",
]
