from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "popcompliance.reports"
    verbose_name = "Compliance reports"
