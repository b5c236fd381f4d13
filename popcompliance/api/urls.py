"""/api/v1/: servers, alerts, maintenance windows, waivers, the fleet summary, compliance reports,
the OpenAPI schema and its documentation pages (Swagger UI at docs/, Redoc at redoc/; see
popcompliance.api.docs)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from popcompliance.api import docs, views
from popcompliance.api.channels import ChannelViewSet
from popcompliance.audit.api import AuditEntryViewSet
from popcompliance.maintenance.api import WindowViewSet
from popcompliance.reports.api import ReportFileView, ReportView
from popcompliance.waivers.api import WaiverViewSet

app_name = "api"

router = DefaultRouter()
router.include_root_view = False
router.register("servers", views.ServerViewSet, basename="server")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("audit", AuditEntryViewSet, basename="audit")
router.register("channels", ChannelViewSet, basename="channel")
router.register("maintenance", WindowViewSet, basename="maintenance")
router.register("waivers", WaiverViewSet, basename="waiver")

urlpatterns = [
    path("", include(router.urls)),
    path("summary/", views.SummaryView.as_view(), name="summary"),
    path("reports/", ReportView.as_view(), name="report"),
    re_path(
        r"^reports/(?P<file_format>pdf|csv|xlsx)/$", ReportFileView.as_view(), name="report_file"
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs.SwaggerDocsView.as_view(), name="docs"),
    path("redoc/", docs.RedocDocsView.as_view(), name="redoc"),
]
