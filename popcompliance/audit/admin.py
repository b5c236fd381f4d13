from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from popcompliance.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is written by popcompliance.audit.recorder alone, and never edited
    or deleted from the application."""

    list_display = ["at", "actor_label", "source", "action", "object_type", "object_label"]
    list_filter = ["action", "object_type", "source"]
    search_fields = ["object_label", "actor_label"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
