"""Template context for every page: the signed-in user's role (lazy; see roles.RoleView)."""

from __future__ import annotations

from django.http import HttpRequest

from popcompliance.accounts.roles import RoleView


def role(request: HttpRequest) -> dict[str, RoleView]:
    return {"role": RoleView(request.user)}
