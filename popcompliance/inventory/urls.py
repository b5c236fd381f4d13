"""Inventory routes, under servers/ and policies/ (included at the site's root)."""

from django.urls import include, path

from popcompliance.inventory import views

app_name = "inventory"

server_patterns = [
    path("", views.server_list, name="server_list"),
    path("add/", views.server_add, name="server_add"),
    path("import/", views.server_import, name="server_import"),
    path("import/<int:pk>/", views.import_job, name="import_job"),
    path("export.csv", views.server_export, name="server_export"),
    path("<int:pk>/edit/", views.server_edit, name="server_edit"),
    path("<int:pk>/pause/", views.server_pause, name="server_pause"),
    path("<int:pk>/resume/", views.server_resume, name="server_resume"),
    path("<int:pk>/delete/", views.server_delete, name="server_delete"),
]

policy_patterns = [
    path("", views.policy_list, name="policy_list"),
    path("add/", views.policy_add, name="policy_add"),
    path("<int:pk>/edit/", views.policy_edit, name="policy_edit"),
    path("<int:pk>/delete/", views.policy_delete, name="policy_delete"),
]

urlpatterns = [
    path("servers/", include(server_patterns)),
    path("policies/", include(policy_patterns)),
]
