from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.validators import validate_email


class AlertsConfig(AppConfig):
    name = "popcompliance.alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        checks.register(check_alert_settings)


def check_alert_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """Alert settings that would fail later, in a worker, reported at start-up instead."""
    errors = []
    if not all(days.isdigit() for days in settings.POPC_EXPIRY_THRESHOLDS):
        errors.append(
            checks.Error(
                f"POPC_EXPIRY_THRESHOLDS={','.join(settings.POPC_EXPIRY_THRESHOLDS)}: "
                "give whole numbers of days, e.g. 30,14,7,1",
                id="alerts.E001",
            )
        )
    for address in settings.POPC_ALERT_RECIPIENTS:
        try:
            validate_email(address)
        except ValidationError:
            errors.append(
                checks.Error(
                    f"POPC_ALERT_RECIPIENTS: {address!r} is no email address", id="alerts.E002"
                )
            )
    return errors
