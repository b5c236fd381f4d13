"""Maintenance window pages (mounted at /maintenance/)."""

from django.urls import path

from popcompliance.maintenance import views

app_name = "maintenance"

urlpatterns = [
    path("", views.window_list, name="list"),
    path("add/", views.window_add, name="add"),
    path("<int:pk>/edit/", views.window_edit, name="edit"),
    path("<int:pk>/delete/", views.window_delete, name="delete"),
]
