"""Sign-in with an LDAP directory or Active Directory: django-auth-ldap's backend with our rules
(popcompliance.accounts.sso) on top. Settings: POPC_LDAP_* (sso_settings.py, docs/sso.md).

A sign-in searches the user with the bind account, binds as the user with the password typed
(over ldaps:// or StartTLS unless the directory is on this machine), reads the user's groups,
maps them to a role, and signs in to the account tied to that directory username, creating it
the first time. The login form, the Django admin's and axes' throttling are the same as for
local passwords: this is one more backend behind django.contrib.auth.authenticate().
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ldap
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from django_auth_ldap.backend import LDAPBackend, ldap_error

from popcompliance.accounts.models import SignInMethod
from popcompliance.accounts.sso import (
    SignInRefused,
    give_role,
    granted_role,
    refuse,
    signing_in,
    tie,
    tied_account,
)

LDAP = SignInMethod.LDAP


class DirectoryBackend(LDAPBackend):  # type: ignore[misc]
    """django-auth-ldap's backend, with usernames compared without case, the role mapped from
    the groups at every sign-in, and accounts tied to their directory username."""

    def ldap_to_django_username(self, username: str) -> str:
        # Directories compare names without case: "Alice" and "alice" are one person, and
        # must be one account here.
        return username.lower()

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[Any, bool]:
        """The account of a directory user whose password was just accepted: refused when no
        group grants a role, or when the name is taken by an account not tied to it."""
        request = ldap_user._request
        role = granted_role(normalised_dns(group_dns_of(ldap_user)), role_groups())
        try:
            if role is None:
                raise SignInRefused(
                    f"the directory account {username!r} is in none of the groups "
                    "POPC_LDAP_ADMIN_GROUPS, POPC_LDAP_OPERATOR_GROUPS or POPC_LDAP_VIEWER_GROUPS "
                    "name, and POPC_SSO_DEFAULT_ROLE is none"
                )
            user = tied_account(LDAP, username, username)
        except SignInRefused as exc:
            refuse(request, str(exc), tell_user=True)
            raise ldap_user.AuthenticationFailed(str(exc)) from None
        ldap_user.popc_role = role
        if user is None:
            return get_user_model()(username=username), True
        return user, False

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> Any:
        """django-auth-ldap's sign-in, then the account's tie and role, in one transaction;
        the changes are audited as an "LDAP sign-in"."""
        with signing_in(LDAP, ldap_user._request), transaction.atomic():
            user = super().authenticate_ldap_user(ldap_user, password)
            if user is not None:
                tie(user, LDAP, user.get_username().lower())
                give_role(user, ldap_user.popc_role)
        return user


def role_groups() -> dict[str, list[str]]:
    return {role: normalised_dns(dns) for role, dns in settings.POPC_LDAP_ROLE_GROUPS.items()}


def group_dns_of(ldap_user: Any) -> Iterable[str]:
    """The user's groups; none looked up when no role is mapped to a group (only
    POPC_SSO_DEFAULT_ROLE is set, so there is no group search to run)."""
    if not any(settings.POPC_LDAP_ROLE_GROUPS.values()):
        return ()
    dns: Iterable[str] = ldap_user.group_dns
    return dns


def normalised_dns(dns: Iterable[str]) -> list[str]:
    """DNs written one way, so "CN=Admins, OU=Groups" matches "cn=admins,ou=groups"."""
    normalised = []
    for dn in dns:
        try:
            normalised.append(ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower())
        except ldap.DECODING_ERROR:
            normalised.append(dn.strip().lower())
    return normalised


def note_directory_error(
    sender: Any, context: str, request: HttpRequest | None, exception: Exception, **_: Any
) -> None:
    """The directory failed (unreachable, a certificate not trusted, the bind account
    refused): what it said, for the audit log's entry of the failed sign-in."""
    refuse(request, f"the directory could not be used ({describe(exception)})")


def describe(exception: Exception) -> str:
    """python-ldap's error as one line: its description and the server's or library's note."""
    details = exception.args[0] if exception.args else None
    if isinstance(details, dict):
        parts = [str(details.get("desc", "")), str(details.get("info", ""))]
        return ": ".join(part for part in parts if part) or type(exception).__name__
    return str(exception) or type(exception).__name__


def connect() -> None:
    """Connect the receiver of django-auth-ldap's errors (AccountsConfig.ready)."""
    ldap_error.connect(note_directory_error, dispatch_uid="accounts.ldap_error")
