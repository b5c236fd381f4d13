"""Routes of the operations endpoints, at the site's root."""

from django.urls import path

from popcompliance.ops import views

app_name = "ops"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
]
