"""Waiver pages (mounted at /waivers/)."""

from django.urls import path

from popcompliance.waivers import views

app_name = "waivers"

urlpatterns = [
    path("", views.waiver_list, name="list"),
    path("add/", views.waiver_add, name="add"),
    path("<int:pk>/revoke/", views.waiver_revoke, name="revoke"),
]
