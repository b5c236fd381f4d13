"""What the single sign-on methods (directory.py for LDAP, oidc.py for OpenID Connect) share:
the role that a directory's groups or a provider's claim grant, the account an identity signs
in to, and why a sign-in was refused.

Rules, the same for both methods:
- the role comes from the directory or the provider at every sign-in (the highest one mapped,
  else POPC_SSO_DEFAULT_ROLE, else the sign-in is refused), so removing someone from a group
  there takes effect at their next sign-in;
- an identity signs in to the account tied to it (SsoIdentity), created at its first sign-in
  with an unusable password; it never takes over an account it is not tied to, such as a
  local account of the same name, which would let whoever controls the name there become
  that account here;
- a refusal says why, for the audit log and the person at the login page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest

from popcompliance.accounts.models import SignInMethod, SsoIdentity
from popcompliance.accounts.roles import ROLES, role_of, set_role
from popcompliance.audit.context import acting_as, source_of

# Where a refusal's reason waits on the request: for the audit log's entry of the failed
# sign-in, and, when the person may read it, for the login page.
_REFUSAL = "_popc_sign_in_refusal"
_TELL_USER = "_popc_sign_in_refusal_told"


class SignInRefused(Exception):
    """The identity was proved but may not sign in; the message says why."""


def refuse(request: HttpRequest | None, reason: str, *, tell_user: bool = False) -> None:
    """Note why this request's sign-in fails (the first reason wins). `tell_user` only for
    reasons given after the password or the provider proved who it is: they tell an
    attacker nothing."""
    if request is not None and not hasattr(request, _REFUSAL):
        setattr(request, _REFUSAL, reason)
        setattr(request, _TELL_USER, tell_user)


def refusal_of(request: HttpRequest | None) -> str | None:
    return getattr(request, _REFUSAL, None)


def refusal_to_tell(request: HttpRequest | None) -> str | None:
    """The reason, when the person signing in may read it."""
    return refusal_of(request) if getattr(request, _TELL_USER, False) else None


def granted_role(found: Iterable[str], mapping: dict[str, list[str]]) -> str | None:
    """The highest role whose mapped names (group DNs, claim values) are among `found`,
    compared without case; else POPC_SSO_DEFAULT_ROLE; None refuses the sign-in."""
    names = {name.lower() for name in found}
    for role in reversed(ROLES):
        if any(mapped.lower() in names for mapped in mapping.get(role, [])):
            return role
    default: str | None = settings.POPC_SSO_DEFAULT_ROLE
    return default


def tied_account(method: SignInMethod, subject: str, username: str) -> Any:
    """The account tied to the identity, or None when it has none yet and `username` is free
    for a new one. SignInRefused when an account not tied to it already has that name."""
    identity = SsoIdentity.objects.select_related("user").filter(method=method, subject=subject)
    tied = identity.first()
    if tied is not None:
        return tied.user
    if get_user_model()._default_manager.filter(username__iexact=username).exists():
        raise SignInRefused(
            f"an account named {username!r} already exists here and is not tied to this "
            f"{method.label} identity; an admin must rename or delete it first"
        )
    return None


def tie(user: Any, method: SignInMethod, subject: str) -> None:
    """Tie a new account to its identity."""
    SsoIdentity.objects.get_or_create(user=user, defaults={"method": method, "subject": subject})


def give_role(user: Any, role: str) -> None:
    """Make `role` the account's role, writing (and auditing) only a change."""
    if role_of(user) != role:
        set_role(user, role)


def signing_in(method: SignInMethod, request: HttpRequest | None) -> Any:
    """The audit scope of the changes a sign-in makes to its account (created, its role):
    before the sign-in completes nobody is signed in, so they are recorded as e.g. "LDAP
    sign-in" from the client's address."""
    path = request.path_info if request is not None else ""
    return acting_as(f"{method.label} sign-in", source_of(path), request)
