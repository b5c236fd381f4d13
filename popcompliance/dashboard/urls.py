"""The dashboard's pages (mounted at the site root)."""

from django.urls import path

from popcompliance.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("servers/<int:pk>/", views.server_page, name="server"),
    path("servers/<int:pk>/history/", views.server_history, name="server_history"),
    path("servers/<int:pk>/compare/", views.server_compare, name="server_compare"),
    path("servers/<int:pk>/scan/", views.scan_now, name="scan_now"),
    path("servers/<int:pk>/scan/status/", views.scan_status, name="scan_status"),
    path("certificates/", views.certificates, name="certificates"),
    path("certificates/<int:pk>/", views.certificate, name="certificate"),
]
