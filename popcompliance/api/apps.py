"""The JSON API (Django REST framework, schema by drf-spectacular) at /api/v1/."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "popcompliance.api"
    label = "popc_api"
    verbose_name = "JSON API"
