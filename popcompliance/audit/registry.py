"""What the audit log records: an explicit list of models, and of the fields of each.

A field not listed is never recorded: the scan pipeline rewrites a server's schedule and
status on every scan, and those columns are not listed, so scans leave no trace here (their
own history is compliance.Change). A listed field the model lacks fails at start-up
(AuditConfig.ready), so a misspelt name cannot leave a field silently unrecorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Model

# Recorded only as "(set)", "(changed)", "(removed)", never their value: secrets (a password
# hash, the monitoring password's encrypted token), and the CA bundle, which is not secret but
# kilobytes of PEM that say nothing at a glance.
REDACTED_FIELDS = frozenset(
    {"password", "monitor_password_encrypted", "url_encrypted", "ca_bundle_pem"}
)


@dataclass(frozen=True)
class Tracked:
    """One audited field, and the label its changes are recorded under."""

    name: str
    label: str
    # For a relation: the related object's attribute to record (its name), not its id.
    shown_as: str = ""
    # The column's attribute (policy_id for policy), filled in from the model.
    attname: str = ""

    @property
    def shown_path(self) -> str:
        """The lookup of the recorded value in `values()`: policy__name for policy."""
        return f"{self.name}__{self.shown_as}" if self.shown_as else self.attname


def by_pk_and_str(instance: Any) -> tuple[int | None, str]:
    return instance.pk, str(instance)


def by_token_owner(token: Any) -> tuple[int | None, str]:
    """A token by its id, and its owner's name with its own."""
    return token.pk, f"{token.user.get_username()}: {token}"


@dataclass(frozen=True)
class Audited:
    """How one model is audited: its object type, its fields, its many-to-many fields."""

    object_type: str
    fields: tuple[Tracked, ...] = ()
    many: tuple[Tracked, ...] = ()
    identify: Callable[[Any], tuple[int | None, str]] = by_pk_and_str


SERVER = Audited(
    "server",
    fields=(
        Tracked("name", "name"),
        Tracked("host", "host"),
        Tracked("service_name", "service name"),
        Tracked("pop3_port", "POP3 port"),
        Tracked("pop3s_port", "POP3S port"),
        Tracked("protocols", "protocols"),
        Tracked("imap_port", "IMAP4 port"),
        Tracked("imaps_port", "IMAPS port"),
        Tracked("submission_port", "submission port"),
        Tracked("submissions_port", "submissions port"),
        Tracked("site", "site"),
        Tracked("owner_emails", "owners"),
        Tracked("policy", "policy", shown_as="name"),
        Tracked("scan_interval", "scan interval (minutes)"),
        Tracked("paused", "paused"),
        Tracked("monitor_username", "monitor username"),
        Tracked("monitor_password_encrypted", "monitor password"),
    ),
    many=(Tracked("tags", "tags", shown_as="name"),),
)
POLICY = Audited(
    "policy",
    fields=(
        Tracked("name", "name"),
        Tracked("description", "description"),
        Tracked("is_default", "default"),
        Tracked("warn_days", "warn days"),
        Tracked("critical_days", "critical days"),
        Tracked("tls_profile", "TLS profile"),
        Tracked("tls_enumeration_hours", "TLS enumeration every (hours)"),
        Tracked("use_system_trust", "trust the system's CAs"),
        Tracked("ca_bundle_pem", "CA bundle"),
        Tracked("allow_cleartext_port", "allow port 110"),
        Tracked("allow_cleartext_imap", "allow port 143"),
        Tracked("allow_cleartext_submission", "allow port 587"),
        Tracked("error_runs_before_unknown", "failed runs before unknown"),
        Tracked("alert_on_warn", "alert on warn"),
    ),
)
TAG = Audited("tag", fields=(Tracked("name", "name"),))
USER = Audited(
    "user",
    fields=(
        Tracked("username", "username"),
        Tracked("first_name", "first name"),
        Tracked("last_name", "last name"),
        Tracked("email", "email"),
        Tracked("is_active", "active"),
        Tracked("is_staff", "staff"),
        Tracked("is_superuser", "superuser"),
        Tracked("password", "password"),
    ),
    # Roles are groups (popcompliance.accounts.roles).
    many=(
        Tracked("groups", "groups", shown_as="name"),
        Tracked("user_permissions", "permissions", shown_as="codename"),
    ),
)
# Created and revoked (deleted); only the token's digest is stored, and never recorded.
API_TOKEN = Audited(
    "api token",
    fields=(Tracked("name", "name"), Tracked("expires_at", "expires")),
    identify=by_token_owner,
)
MAINTENANCE_WINDOW = Audited(
    "maintenance window",
    fields=(
        Tracked("name", "name"),
        Tracked("comment", "comment"),
        Tracked("server", "server", shown_as="name"),
        Tracked("tag", "tag", shown_as="name"),
        Tracked("site", "site"),
        Tracked("recurrence", "recurrence"),
        Tracked("starts_at", "starts (UTC)"),
        Tracked("ends_at", "ends (UTC)"),
        Tracked("rule", "rule"),
        Tracked("duration_minutes", "duration (minutes)"),
        Tracked("time_zone", "time zone"),
    ),
)

# A waiver: granted (created) and revoked (revoked_at and revoked_by changed); never deleted.
WAIVER = Audited(
    "waiver",
    fields=(
        Tracked("server", "server", shown_as="name"),
        Tracked("tag", "tag", shown_as="name"),
        Tracked("check_id", "check"),
        Tracked("justification", "justification"),
        Tracked("approver", "approver", shown_as="username"),
        Tracked("starts_at", "starts (UTC)"),
        Tracked("expires_at", "expires (UTC)"),
        Tracked("revoked_at", "revoked (UTC)"),
        Tracked("revoked_by", "revoked by", shown_as="username"),
    ),
)

# An alert channel: its URL holds the webhook's secret, recorded as set or changed only.
CHANNEL = Audited(
    "channel",
    fields=(
        Tracked("name", "name"),
        Tracked("url_encrypted", "URL"),
        Tracked("url_redacted", "destination"),
        Tracked("scope", "scope"),
        Tracked("tag", "tag", shown_as="name"),
        Tracked("owner_email", "owner"),
        Tracked("enabled", "enabled"),
    ),
)

# Who receives the monthly compliance report (popcompliance.reports).
REPORT_SCHEDULE = Audited(
    "report schedule",
    fields=(
        Tracked("recipients", "recipients"),
        Tracked("scope", "scope"),
        Tracked("tls_profile", "TLS profile"),
    ),
)

OBJECT_TYPES = tuple(
    spec.object_type
    for spec in (
        SERVER,
        POLICY,
        TAG,
        USER,
        API_TOKEN,
        CHANNEL,
        MAINTENANCE_WINDOW,
        WAIVER,
        REPORT_SCHEDULE,
    )
)


@cache
def audited_models() -> dict[type[Model], Audited]:
    """Each audited model with its spec, each field with its attname."""
    specs = {
        "inventory.Server": SERVER,
        "inventory.Policy": POLICY,
        "inventory.Tag": TAG,
        settings.AUTH_USER_MODEL: USER,
        "accounts.ApiToken": API_TOKEN,
        "alerts.Channel": CHANNEL,
        "maintenance.MaintenanceWindow": MAINTENANCE_WINDOW,
        "waivers.Waiver": WAIVER,
        "reports.ReportSchedule": REPORT_SCHEDULE,
    }
    models = {apps.get_model(label): spec for label, spec in specs.items()}
    return {model: _with_attnames(model, spec) for model, spec in models.items()}


def _with_attnames(model: type[Model], spec: Audited) -> Audited:
    """The spec with each field's attname (policy_id for policy) read from the model."""

    def filled(tracked_fields: tuple[Tracked, ...]) -> tuple[Tracked, ...]:
        return tuple(
            replace(tracked, attname=model._meta.get_field(tracked.name).attname)  # type: ignore[union-attr]
            for tracked in tracked_fields
        )

    return replace(spec, fields=filled(spec.fields), many=filled(spec.many))


def audited(model: type[Model]) -> Audited | None:
    """The spec of a model (or of the model a proxy stands for), None when not audited."""
    return audited_models().get(model._meta.concrete_model)  # type: ignore[arg-type]
