"""The audit log page (mounted at /audit/)."""

from django.urls import path

from popcompliance.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.entries, name="entries"),
]
