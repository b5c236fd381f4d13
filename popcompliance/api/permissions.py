"""The roles of popcompliance.accounts.roles, applied to the API.

Any signed-in account (token or session) reads; writing needs the role the view names for
the action in `action_roles` (admin when it names none):

- viewer: read-only;
- operator: scan servers and acknowledge alerts;
- admin: create, update, pause and resume servers.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from popcompliance.accounts.roles import ADMIN, ROLE_LABELS, has_role


class RolePermission(BasePermission):
    """Reads for every authenticated user; writes by role. Unauthenticated requests get 401
    (the token authenticator answers with a WWW-Authenticate header), too low a role 403."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS or not hasattr(view, request.method.lower()):
            # No handler: let the view answer 405 rather than 403 for an unsupported method.
            return True
        role = required_role(view)
        self.message = f"This needs the {ROLE_LABELS[role]} role."
        return has_role(request.user, role)


def required_role(view: Any) -> str:
    """The role a view's current (writing) action needs: one query at most, for the groups."""
    roles: dict[str, str] = getattr(view, "action_roles", {})
    return roles.get(getattr(view, "action", None) or "", ADMIN)
