from django.apps import AppConfig


class WaiversConfig(AppConfig):
    name = "popcompliance.waivers"
    verbose_name = "Exceptions (waivers)"
