"""Helpers of the single sign-on tests: configure sign-in from environment variables exactly as
a deployment does (popcompliance.accounts.sso_settings), for one test. A plain module."""

from __future__ import annotations

import os
from typing import Any

import pytest

from popcompliance.accounts import oidc
from popcompliance.accounts.sso_settings import sign_in_settings

PREFIXES = ("POPC_LDAP_", "POPC_OIDC_", "POPC_SSO_", "POPC_LOCAL_ACCOUNTS")


def configure_sign_in(monkeypatch: pytest.MonkeyPatch, settings: Any, **env: str) -> None:
    """Set these variables (and no other sign-in variable), read them as settings.py does,
    and apply the result to Django's settings for the rest of the test."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name, value in sign_in_settings().items():
        setattr(settings, name, value)
    # The discovery document belongs to the issuer configured before.
    oidc.forget_discovery()
