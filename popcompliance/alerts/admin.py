"""The alerts in the admin: acknowledge an alert (comment, optional expiry) and see every
email and channel message with its delivery attempts; failed ones can be retried once the cause
is fixed. Channels themselves are edited on their own pages (/alerts/channels/), which keep
their URL write-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from popcompliance.alerts.models import (
    Alert,
    DeliveryAttempt,
    ExpiryWarning,
    Notification,
    NotificationStatus,
)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["opened_at", "server", "check_id", "status", "state", "resolved_at"]
    list_filter = ["status", "check_id"]
    list_select_related = ["server"]
    search_fields = ["server__name", "check_id"]
    fields = [
        "server",
        "check_id",
        "status",
        "address",
        "summary",
        "remediation",
        "opened_at",
        "silent",
        "next_reminder_at",
        "reminders_sent",
        "acknowledged_at",
        "acknowledged_by",
        "ack_comment",
        "ack_until",
        "resolved_at",
    ]
    readonly_fields = [f for f in fields if f not in ("ack_comment", "ack_until")]

    @admin.display(description="state")
    def state(self, alert: Alert) -> str:
        return alert.state(timezone.now())

    def save_model(self, request: HttpRequest, obj: Alert, form: Any, change: bool) -> None:
        """Writing a comment acknowledges the alert: reminders stop until `ack_until`."""
        if {"ack_comment", "ack_until"} & set(form.changed_data):
            obj.acknowledge(request.user, obj.ack_comment, obj.ack_until, timezone.now())
        else:
            super().save_model(request, obj, form, change)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "outcome", "error", "duration_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "to", "subject", "status", "attempt_count", "last_error"]
    list_filter = ["status", "kind", "channel"]
    search_fields = ["to", "subject"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]

    @admin.action(description="Retry the selected failed messages now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        now = timezone.now()
        failed = list(queryset.filter(status=NotificationStatus.FAILED))
        for notification in failed:
            notification.retry_now(now)
        self.message_user(request, f"{len(failed)} message(s) queued again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ExpiryWarning)
class ExpiryWarningAdmin(admin.ModelAdmin):
    list_display = ["certificate", "days", "notified", "created_at"]
    list_select_related = ["certificate"]
