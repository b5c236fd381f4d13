from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "popcompliance.maintenance"
    verbose_name = "Maintenance windows"
