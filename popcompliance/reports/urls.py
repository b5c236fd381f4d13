"""Reports pages (mounted at /reports/)."""

from django.urls import path

from popcompliance.reports import views

app_name = "reports"

urlpatterns = [
    path("", views.report_page, name="page"),
    path("schedule/", views.schedule, name="schedule"),
]
