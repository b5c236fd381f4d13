from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "popcompliance.compliance"
    verbose_name = "Compliance"
