"""API tokens, stored as digests: the database never holds a token a client could send.

A token is 32 random bytes (43 url-safe characters), shown once when it is created. What is
stored is its SHA-256 digest (a random secret of that length needs no slow, salted hash: there
is nothing to guess), its first characters to tell tokens apart, and when it expires.
Revoking a token deletes its row.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse

PREFIX_LENGTH = 8
# A token's last use is written at most this often, not on every request.
LAST_USED_PRECISION = timedelta(minutes=5)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """One API token of a user, sent as `Authorization: Token <token>`; it carries the user's
    role. `expires_at` None: it never expires."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for.")
    prefix = models.CharField(max_length=PREFIX_LENGTH)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def get_absolute_url(self) -> str:
        return reverse("accounts:api_tokens")

    @classmethod
    def issue(
        cls, user: object, name: str, now: datetime, days: int | None
    ) -> tuple[ApiToken, str]:
        """A new token of `user` valid for `days` (None: never expires), saved, and the token
        itself, which is never stored and must be shown to its owner now."""
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(days=days) if days else None
        row = cls.objects.create(
            user=user,
            name=name,
            prefix=token[:PREFIX_LENGTH],
            digest=digest_of(token),
            created_at=now,
            expires_at=expires_at,
        )
        return row, token

    def has_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def note_use(self, now: datetime) -> None:
        """Record that the token was used now; one UPDATE at most every LAST_USED_PRECISION,
        past the audit log (a use is not a change)."""
        if self.last_used_at and now - self.last_used_at < LAST_USED_PRECISION:
            return
        self.last_used_at = now
        ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)


class SignInMethod(models.TextChoices):
    """The single sign-on methods an account can come from."""

    LDAP = "ldap", "LDAP"
    OIDC = "oidc", "OpenID Connect"


class SsoIdentity(models.Model):
    """Ties an account to the identity it was created for by a single sign-on method: the
    directory's username (lowercased) for LDAP, the provider's `sub` claim for OpenID Connect.

    Only an account with this row signs in through that method: a directory user or a
    provider's claim that happens to carry the name of a local account never takes it over
    (popcompliance.accounts.sso)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity"
    )
    method = models.CharField(max_length=10, choices=SignInMethod.choices)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["method", "subject"], name="sso_identity_unique")
        ]
        verbose_name_plural = "SSO identities"

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.subject}"

    def get_absolute_url(self) -> str:
        return reverse("accounts:users")
