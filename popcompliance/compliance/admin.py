from django.contrib import admin

from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    Change,
    CheckState,
    FleetSnapshot,
    Heartbeat,
    ScanRun,
    ServerAddress,
)


@admin.register(CheckState)
class CheckStateAdmin(admin.ModelAdmin):
    list_display = ["server", "address", "check_id", "status", "since", "candidate_status"]
    list_filter = ["status", "check_id"]
    list_select_related = ["server"]
    search_fields = ["server__name", "address"]


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "server", "address", "check_id", "previous_status", "status"]
    list_filter = ["status", "check_id"]
    list_select_related = ["server"]
    search_fields = ["server__name", "address"]
    raw_id_fields = ["scan_run"]


@admin.register(ScanRun)
class ScanRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "server", "purpose", "compliant", "duration_ms", "worker"]
    list_filter = ["purpose", "compliant"]
    list_select_related = ["server"]
    search_fields = ["server__name"]


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ["common_name", "issuer", "not_after", "key_type", "key_bits", "last_seen_at"]
    search_fields = ["common_name", "subject", "fingerprint_sha256"]


@admin.register(CertificateSighting)
class CertificateSightingAdmin(admin.ModelAdmin):
    list_display = ["certificate", "server", "address", "port", "last_seen_at"]
    list_select_related = ["certificate", "server"]


@admin.register(ServerAddress)
class ServerAddressAdmin(admin.ModelAdmin):
    list_display = ["server", "address", "product", "login_type", "last_seen_at"]
    list_select_related = ["server"]


@admin.register(FleetSnapshot)
class FleetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["day", "total", "compliant", "non_compliant", "excepted", "unknown", "paused"]


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "last_seen_at", "detail", "failure", "failed_at"]
