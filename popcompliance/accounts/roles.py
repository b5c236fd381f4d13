"""The three roles and the helpers views use to enforce them.

Roles are ordered, each including the ones before it:

- viewer: reads every page (any signed-in account is at least a viewer);
- operator: also starts scans and acknowledges alerts;
- admin: also edits the inventory, the policies and the user accounts.

A role is membership of the group of that name (created by migration 0001_roles); superusers
are admins. The role is read with one query per request and cached on the user object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
ROLE_LABELS = {VIEWER: "Viewer", OPERATOR: "Operator", ADMIN: "Admin"}
ROLE_CHOICES = [(role, ROLE_LABELS[role]) for role in ROLES]

View = Callable[..., HttpResponse]


def role_of(user: Any) -> str | None:
    """The user's highest role, or None when not signed in. Hits the database once per user
    object (the groups), then answers from a cache on the object."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    cached: str | None = getattr(user, "_popc_role", None)
    if cached is None:
        cached = highest_role(user.groups.values_list("name", flat=True))
        user._popc_role = cached
    return cached


def highest_role(group_names: Iterable[str]) -> str:
    """The highest role among group names; an account in none of them is a viewer."""
    names = set(group_names)
    return next((role for role in reversed(ROLES) if role in names), VIEWER)


def has_role(user: Any, role: str) -> bool:
    """Whether the user holds `role` or a higher one."""
    current = role_of(user)
    return current is not None and ROLES.index(current) >= ROLES.index(role)


def role_required(role: str) -> Callable[[View], View]:
    """Decorate a view: anonymous users go to the login page, signed-in users without the
    role get 403."""

    def decorator(view: View) -> View:
        @wraps(view)
        def check(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This needs the {ROLE_LABELS[role]} role.")
            return view(request, *args, **kwargs)

        return login_required(check)

    return decorator


def set_role(user: Any, role: str) -> None:
    """Make `role` the user's only role group (other groups are left alone)."""
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.__dict__.pop("_popc_role", None)


class RoleView:
    """What templates ask: `role.name`, `role.can_operate`, `role.can_admin`. Lazy, so a page
    that never asks costs no query."""

    def __init__(self, user: Any) -> None:
        self.user = user

    @property
    def name(self) -> str | None:
        return role_of(self.user)

    @property
    def label(self) -> str:
        return ROLE_LABELS.get(self.name or "", "")

    @property
    def can_operate(self) -> bool:
        return has_role(self.user, OPERATOR)

    @property
    def can_admin(self) -> bool:
        return has_role(self.user, ADMIN)
