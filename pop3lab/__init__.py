"""The POP3 lab: emulated and real POP3 servers, and test certificates, for tests on loopback."""

from pop3lab.config import EndpointConfig
from pop3lab.fleet import addresses, describe, hostile_fleet, mixed_fleet, uniform_fleet
from pop3lab.hostile import BEHAVIOURS, HostileConfig
from pop3lab.journal import ConnectionLog, Journal, LoginAttempt
from pop3lab.lab import BoundEndpoint, Lab, LabThread

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
    "addresses",
    "describe",
    "hostile_fleet",
    "mixed_fleet",
    "uniform_fleet",
]
