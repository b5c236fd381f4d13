"""Login throttling with django-axes: the client's address, who is locked out, the lockout page.

Every password sign-in goes through django.contrib.auth.authenticate(), where axes' backend
refuses a locked-out client before the password is checked, and axes' signal handlers count the
failures (settings: the AXES_* block). Failed sign-ins are counted over the last
POPC_LOGIN_LOCKOUT_MINUTES:

- per (username, client address): that pair is locked out at AXES_FAILURE_LIMIT, so somebody
  guessing an admin's password from elsewhere locks out only himself, never the admin at her
  desk;
- per client address: an address that sprays many usernames is locked out for all of them at
  POPC_LOGIN_ADDRESS_FAILURE_LIMIT.

Axes compares every lockout parameter with the same limit; its maintainers' answer for two
limits is a handler of one's own (jazzband/django-axes#661): LoginThrottle.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


class LoginThrottle(AxesDatabaseHandler):
    """Axes' database handler with a second, larger limit for a whole client address.

    Reads AXES_LOCKOUT_PARAMETERS as (the pair, the address), in that order."""

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """The failures that count against AXES_FAILURE_LIMIT: the pair's, or the limit itself
        when the whole address is locked out. Two queries."""
        pair_attempts, address_attempts = self.get_user_attempts(request, credentials)
        pair_failures = _total_failures(pair_attempts)
        if _total_failures(address_attempts) >= settings.POPC_LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(pair_failures, settings.AXES_FAILURE_LIMIT)
        return pair_failures

    def reset_user_attempts(
        self, request: HttpRequest, credentials: dict[str, Any] | None = None
    ) -> int:
        """After a successful sign-in, forget that pair's failures only. Axes' own reset also
        deletes every failure from the address, so an insider could sign in as himself between
        guesses at an admin's password and never reach either limit."""
        pair_attempts, _address_attempts = self.filter_user_attempts(request, credentials)
        return pair_attempts.delete()[0]


def _total_failures(attempts: QuerySet[AccessAttempt]) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def client_ip(request: HttpRequest) -> str | None:
    """The client's address (AXES_CLIENT_IP_CALLABLE): REMOTE_ADDR, or behind
    POPC_TRUSTED_PROXY_COUNT reverse proxies the address the outermost one saw.

    Each proxy appends to X-Forwarded-For the address it got the request from, so with N
    proxies that is the Nth entry from the right; entries further left were written by the
    client and prove nothing. A header too short or not an address (the request did not come
    through the proxies) falls back to REMOTE_ADDR."""
    remote_addr: str | None = request.META.get("REMOTE_ADDR")
    proxies = settings.POPC_TRUSTED_PROXY_COUNT
    if proxies == 0:
        return remote_addr
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(forwarded) < proxies:
        return remote_addr
    try:
        return str(ipaddress.ip_address(forwarded[-proxies].strip()))
    except ValueError:
        return remote_addr


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """The page a locked-out client gets instead of the login form (AXES_LOCKOUT_CALLABLE)."""
    minutes = lockout_minutes()
    response = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


def lockout_minutes() -> int:
    return math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)


def _recent_attempts() -> QuerySet[AccessAttempt]:
    """Failures still inside the lockout window, as axes counts them."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    return AccessAttempt.objects.filter(attempt_time__gte=since).order_by()


def locked_out_usernames(usernames: Iterable[str]) -> set[str]:
    """Which of `usernames` are locked out from at least one address. One query."""
    pairs = (
        _recent_attempts()
        .filter(username__in=list(usernames))
        .values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
    )
    return {pair["username"] for pair in pairs}


def locked_out_addresses() -> list[str]:
    """The client addresses locked out for every username. One query."""
    addresses = (
        _recent_attempts()
        .values("ip_address")
        .annotate(failures=Sum("failures_since_start"))
        .filter(failures__gte=settings.POPC_LOGIN_ADDRESS_FAILURE_LIMIT)
        .order_by("ip_address")
    )
    return [row["ip_address"] for row in addresses]


def unlock_username(username: str) -> int:
    """Forget the account's failed sign-ins from every address; the number of rows deleted."""
    return reset(username=username)


def unlock_address(address: str) -> int:
    """Forget every failed sign-in from the address; the number of rows deleted."""
    return reset(ip=address)
