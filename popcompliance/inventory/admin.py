from django.contrib import admin

from popcompliance.inventory.models import Policy, Server, Tag


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "is_default", "tls_profile", "warn_days", "critical_days"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "site", "status", "paused", "last_scan_at", "next_scan_at"]
    list_filter = ["status", "paused", "site", "policy", "tags"]
    search_fields = ["name", "host", "service_name"]
    list_select_related = ["policy"]
    filter_horizontal = ["tags"]
    # The monitoring account is read-only here: its password is set on the server's edit page
    # or through the API, which encrypt it; its token is never shown.
    exclude = ["monitor_password_encrypted"]
    readonly_fields = [
        "status",
        "status_changed_at",
        "last_scan_at",
        "created_at",
        "updated_at",
        "monitor_username",
        "monitor_password_stored",
        "monitor_credentials_updated_at",
    ]

    @admin.display(boolean=True, description="Monitoring password stored")
    def monitor_password_stored(self, server: Server) -> bool:
        return server.has_monitor_password
