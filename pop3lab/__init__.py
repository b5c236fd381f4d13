"""The POP3 lab: emulated POP3, IMAP4 and SMTP submission servers, and test certificates, for
tests on loopback."""

from pop3lab.config import EndpointConfig
from pop3lab.fleet import (
    addresses,
    describe,
    hostile_fleet,
    mixed_fleet,
    serving,
    uniform_fleet,
)
from pop3lab.hostile import BEHAVIOURS, HostileConfig
from pop3lab.journal import ConnectionLog, Journal, LoginAttempt
from pop3lab.lab import BoundEndpoint, Lab, LabThread
from pop3lab.ntlm import NtlmNames

__all__ = [
    "BEHAVIOURS",
    "BoundEndpoint",
    "ConnectionLog",
    "EndpointConfig",
    "HostileConfig",
    "Journal",
    "Lab",
    "LabThread",
    "LoginAttempt",
    "NtlmNames",
    "addresses",
    "describe",
    "hostile_fleet",
    "mixed_fleet",
    "serving",
    "uniform_fleet",
]
