from django.contrib import admin

from popcompliance.reports.models import StoredReport


@admin.register(StoredReport)
class StoredReportAdmin(admin.ModelAdmin):
    list_display = ("key", "day", "scope", "tls_profile", "created_at")
    exclude = ("pdf",)
    readonly_fields = ("key", "day", "scope", "tls_profile", "filename", "summary", "created_at")
