"""AuditEntry: one row per change to an audited object (registry.py), or per named event.

Entries are written by popcompliance.audit.recorder in the transaction of the change they
describe (the changes of one object in one request or command fold into one entry as they
happen), and never edited or deleted by the application afterwards: the admin and the API
are read-only. Retention is left to the operator on purpose: how long an audit trail must be
kept is set by the organisation's own rules (often years), the table grows with edits by
people (a handful of rows a day), not with scans, and a trail the application trims by itself
is one an auditor has to trust less. Delete old rows in the database if a rule requires it.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Action(models.TextChoices):
    """What happened. Besides created, changed and deleted, the few events worth finding by
    themselves: a password set anew, a sign-in lockout by django-axes, an admin lifting one,
    and sign-ins through the web (which method; why one failed)."""

    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    PASSWORD_CHANGED = "password changed", "Password changed"
    LOCKED_OUT = "locked out", "Locked out"
    UNLOCKED = "unlocked", "Unlocked"
    SIGNED_IN = "signed in", "Signed in"
    SIGN_IN_FAILED = "sign-in failed", "Sign-in failed"


ACTION_COLOURS = {
    Action.CREATED: "green",
    Action.CHANGED: "grey",
    Action.DELETED: "red",
    Action.PASSWORD_CHANGED: "amber",
    Action.LOCKED_OUT: "red",
    Action.UNLOCKED: "green",
    Action.SIGNED_IN: "grey",
    Action.SIGN_IN_FAILED: "amber",
}
# Actions whose `changes` are facts of the moment ([None, value]), shown without an old value.
NEW_VALUES_ONLY = frozenset({Action.CREATED, Action.SIGNED_IN, Action.SIGN_IN_FAILED})


class Source(models.TextChoices):
    """Through what the change came."""

    WEB = "web", "Dashboard"
    API = "api", "API"
    ADMIN = "admin", "Django admin"
    COMMAND = "command", "Command"
    SYSTEM = "system", "System"


class AuditEntry(models.Model):
    """Who (`actor`, and `actor_label` as it was then) did what (`action`) to which object
    (`object_type`, `object_id`, `object_label` as it was then), when and from where.
    `changes` maps each changed field's label to [old, new] in words people read: names of
    tags, policies and groups rather than ids; secrets only as "(set)", "(changed)"..."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    # The label outlives the account. No database constraint: an entry written while its
    # actor is being deleted (an admin deleting their own account) must not fail the deletion.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="audit_entries",
    )
    # Indexed for the page's list of everyone who appears in the log.
    actor_label = models.CharField(
        max_length=150,
        db_index=True,
        help_text='The username then, or e.g. "command import_servers".',
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    remote_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=20)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_label = models.CharField(max_length=255)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            # The history of one object: the link on a server's page.
            models.Index(fields=["object_type", "object_id", "-at"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_label}"

    def get_absolute_url(self) -> str:
        """The audit log of this entry's object."""
        query = {"object_type": self.object_type, "object_id": self.object_id or ""}
        return f"{reverse('audit:entries')}?{urlencode(query)}"

    @property
    def shows_new_values_only(self) -> bool:
        return self.action in NEW_VALUES_ONLY

    @property
    def action_colour(self) -> str:
        return ACTION_COLOURS[Action(self.action)]
