"""Who is acting: the request being served (its user is read when an entry is written), or a
label for a management command, or "system" for anything else (a worker, a shell).

AuditMiddleware opens a scope for each request; `acting_as` opens one for a command:

    with acting_as("command import_servers"):
        csvio.import_csv(stream)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse

from popcompliance.accounts.throttle import client_ip
from popcompliance.audit.models import AuditEntry, Source

SYSTEM_LABEL = "system"
ANONYMOUS_LABEL = "anonymous"
# Where the routes of popcompliance/urls.py put the JSON API and Django's admin.
SOURCE_OF_PREFIX = (("/api/", Source.API), ("/admin/", Source.ADMIN))


@dataclass
class Scope:
    """One operation by one actor: a request, or a command run."""

    source: str
    label: str = SYSTEM_LABEL
    request: HttpRequest | None = None
    # The user a background job works for (a large CSV import), when there is no request.
    user: Any = None
    # The latest entry of each object (by type and id) in this scope, which further changes
    # of that object join (a server's fields, then its tags): see recorder.record_change.
    open_entries: dict[tuple[str, int | None], AuditEntry] = field(default_factory=dict)

    def actor(self) -> tuple[Any, str]:
        """The acting user (or None) and the label to record. Read at write time, because
        DRF authenticates a token inside the view and only then sets `request.user`."""
        if self.user is not None:
            return self.user, self.user.get_username()
        if self.request is None:
            return None, self.label
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated:
            # "anonymous" for a request's own scope; e.g. "LDAP sign-in" for the account a
            # sign-in creates before anyone is signed in.
            return None, self.label
        return user, user.get_username()

    @property
    def remote_address(self) -> str | None:
        """The client's address as the sign-in throttle sees it (trusted proxies included)."""
        return None if self.request is None else client_ip(self.request) or None


_current: ContextVar[Scope | None] = ContextVar("popcompliance_audit_scope", default=None)


def current_scope() -> Scope:
    """The open scope, or a new one-off "system" scope outside requests and commands."""
    return _current.get() or Scope(Source.SYSTEM)


@contextmanager
def acting_as(
    label: str,
    source: str = Source.COMMAND,
    request: HttpRequest | None = None,
    user: Any = None,
) -> Iterator[Scope]:
    """Attribute the changes made inside the block to `label` (e.g. "command ensure_admin"),
    or to the user of `request`, or to `user`. Also a decorator; each use opens a new scope."""
    scope = Scope(source, label, request, user)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def source_of(path: str) -> str:
    return next(
        (source for prefix, source in SOURCE_OF_PREFIX if path.startswith(prefix)), Source.WEB
    )


class AuditMiddleware:
    """Makes the request the scope of the changes its view makes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with acting_as(ANONYMOUS_LABEL, source_of(request.path_info), request):
            return self.get_response(request)
