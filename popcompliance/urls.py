"""URL routes."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Operations: /healthz (open) and /metrics (token), see popcompliance.ops.
    path("", include("popcompliance.ops.urls")),
    path("accounts/", include("popcompliance.accounts.urls")),
    # The dashboard: the overview at /, servers/<id>/ pages, certificates/.
    path("", include("popcompliance.dashboard.urls")),
    # The inventory: servers/ and policies/.
    path("", include("popcompliance.inventory.urls")),
    # The alerts: open, acknowledged and resolved; acknowledging.
    path("alerts/", include("popcompliance.alerts.urls")),
    # Maintenance windows: planned spans whose changes send no alert email until they end.
    path("maintenance/", include("popcompliance.maintenance.urls")),
    # Waivers: exceptions an admin grants for a check, with a justification and an expiry.
    path("waivers/", include("popcompliance.waivers.urls")),
    # Compliance reports as of any date (PDF, CSV, XLSX), and the monthly one to auditors.
    path("reports/", include("popcompliance.reports.urls")),
    # The audit log, for admins: who changed what, when.
    path("audit/", include("popcompliance.audit.urls")),
    # The JSON API and its OpenAPI schema (/api/v1/schema/), see popcompliance.api.
    path("api/v1/", include("popcompliance.api.urls")),
]
