"""`Authorization: Token <token>`: looks the token up by its digest (accounts.models.ApiToken),
so the database never holds a token a client could send. One query, plus one UPDATE of the
last use at most every few minutes."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from popcompliance.accounts.models import ApiToken, digest_of


class HashedTokenAuthentication(TokenAuthentication):
    """DRF's header parsing and 401 answers (keyword "Token"), with hashed, expiring tokens."""

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        now = timezone.now()
        found = ApiToken.objects.select_related("user").filter(digest=digest_of(key)).first()
        if found is None or not found.user.is_active:
            raise AuthenticationFailed("Invalid token.")
        if found.has_expired(now):
            raise AuthenticationFailed(
                f"This token expired on {found.expires_at:%Y-%m-%d %H:%M} UTC; "
                "create a new one on your API tokens page."
            )
        found.note_use(now)
        return found.user, found
