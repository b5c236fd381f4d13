"""/api/v1/: servers, alerts, the fleet summary and the OpenAPI schema (no UI: it would need
assets from a CDN)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from popcompliance.api import views

app_name = "api"

router = DefaultRouter()
router.include_root_view = False
router.register("servers", views.ServerViewSet, basename="server")
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("", include(router.urls)),
    path("summary/", views.SummaryView.as_view(), name="summary"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]
