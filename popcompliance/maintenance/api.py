"""/api/v1/maintenance/: maintenance windows. Any signed-in account reads; operators and admins
create, change and delete them (the audit log records who)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets

from popcompliance.accounts.roles import OPERATOR
from popcompliance.api.fields import server_reference, tag_reference
from popcompliance.api.permissions import RolePermission
from popcompliance.api.schema import errors
from popcompliance.inventory.models import Server
from popcompliance.maintenance.models import MaintenanceWindow
from popcompliance.maintenance.schedule import Occurrence

# What the model's clean() may tidy (a cron expression's spaces, seconds dropped, the fields
# of the other kind of window emptied), written back to what is saved.
NORMALISED = ("starts_at", "ends_at", "rule", "duration_minutes")
WRITABLE = (
    "name",
    "comment",
    "server",
    "tag",
    "site",
    "recurrence",
    "starts_at",
    "ends_at",
    "rule",
    "duration_minutes",
    "time_zone",
)


class OccurrenceSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class WindowSerializer(serializers.ModelSerializer):
    server = server_reference()
    tag = tag_reference()
    current = serializers.SerializerMethodField(help_text="The occurrence on now, or null.")
    next = serializers.SerializerMethodField(help_text="The next occurrence, or null.")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "name",
            "comment",
            "server",
            "tag",
            "site",
            "recurrence",
            "starts_at",
            "ends_at",
            "rule",
            "duration_minutes",
            "time_zone",
            "current",
            "next",
            "created_by",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "site": {"help_text": "A site's name: every server there."},
            "starts_at": {"help_text": "ISO 8601; without an offset it is UTC."},
        }

    def validate_site(self, site: str) -> str:
        if site and not Server.objects.filter(site=site).exists():
            raise serializers.ValidationError(f"No server is at site {site!r}.")
        return site

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model's rules (MaintenanceWindow.clean, one scope) on the window as it would be
        saved, errors under the field they concern."""
        stored = {name: getattr(self.instance, name) for name in WRITABLE} if self.instance else {}
        probe = MaintenanceWindow(**{**stored, **attrs})
        try:
            probe.clean()
            probe.validate_constraints()
        except DjangoValidationError as exc:
            found = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            general = found.pop(NON_FIELD_ERRORS, []) + found.pop("", [])
            errors = {**found, **({"non_field_errors": general} if general else {})}
            raise serializers.ValidationError(errors) from exc
        return {**attrs, **{name: getattr(probe, name) for name in NORMALISED}}

    @extend_schema_field(OccurrenceSerializer(allow_null=True))
    def get_current(self, window: MaintenanceWindow) -> dict[str, datetime] | None:
        return _shown(window.occurrence_at(self._now()))

    @extend_schema_field(OccurrenceSerializer(allow_null=True))
    def get_next(self, window: MaintenanceWindow) -> dict[str, datetime] | None:
        return _shown(window.next_occurrence(self._now()))

    def _now(self) -> datetime:
        now: datetime = self.context.get("now") or timezone.now()
        return now


def _shown(occurrence: Occurrence | None) -> dict[str, datetime] | None:
    return None if occurrence is None else {"start": occurrence.start, "end": occurrence.end}


WINDOW_RULES = (
    "Exactly one of `server`, `tag` or `site`. `recurrence` `once` needs `starts_at` and "
    "`ends_at`; `rrule` (an RFC 5545 RRULE such as `FREQ=WEEKLY;BYDAY=SU`, first start "
    "`starts_at`) and `cron` (five fields such as `0 2 * * 0`, firing from `starts_at` on) need "
    "`rule` and `duration_minutes`. Rules are read in `time_zone`. While a window is on, its "
    "servers' changes send no alert email; a problem still there at its end is mailed once."
)


@extend_schema_view(
    list=extend_schema(
        summary="List maintenance windows",
        description="Every window, with its occurrence on now and its next one.",
        responses={200: WindowSerializer, **errors(401)},
    ),
    retrieve=extend_schema(
        summary="One maintenance window", responses={200: WindowSerializer, **errors(401, 404)}
    ),
    create=extend_schema(
        summary="Plan a maintenance window (operator)",
        description=WINDOW_RULES,
        responses={201: WindowSerializer, **errors(400, 401, 403)},
    ),
    update=extend_schema(
        summary="Replace a maintenance window (operator)",
        description=WINDOW_RULES,
        responses={200: WindowSerializer, **errors(400, 401, 403, 404)},
    ),
    partial_update=extend_schema(
        summary="Change a maintenance window (operator)",
        description=WINDOW_RULES,
        responses={200: WindowSerializer, **errors(400, 401, 403, 404)},
    ),
    destroy=extend_schema(
        summary="Delete a maintenance window (operator)",
        description="Alerts it holds are mailed within a minute if their problem is still there.",
        responses={204: None, **errors(401, 403, 404)},
    ),
)
class WindowViewSet(viewsets.ModelViewSet):
    permission_classes = [RolePermission]
    action_roles = {
        action: OPERATOR for action in ("create", "update", "partial_update", "destroy")
    }
    serializer_class = WindowSerializer

    def get_queryset(self) -> QuerySet[MaintenanceWindow]:
        return MaintenanceWindow.objects.select_related("tag", "created_by").order_by("pk")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    # Writes and their audit entries commit together, or not at all.
    @transaction.atomic
    def perform_create(self, serializer: Any) -> None:
        serializer.save(created_by=self.request.user)

    @transaction.atomic
    def perform_update(self, serializer: Any) -> None:
        serializer.save()

    @transaction.atomic
    def perform_destroy(self, instance: MaintenanceWindow) -> None:
        instance.delete()
