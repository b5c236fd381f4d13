from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models.signals import post_migrate

from popcompliance.inventory.rekeying import move_channels_off_former_keys

# A delivery run (alerts.delivery.RUN_BUDGET) must survive a few unreachable channels.
MAX_CHANNEL_TIMEOUT = 60


class AlertsConfig(AppConfig):
    name = "popcompliance.alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        checks.register(check_alert_settings)
        # The channels' URLs are encrypted with the monitoring passwords' keys, and move with
        # them when POPC_CREDENTIALS_KEY is set.
        post_migrate.connect(move_channels_off_former_keys, sender=self)


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
    for setting in ("POPC_ALERT_RECIPIENTS", "POPC_DIGEST_RECIPIENTS"):
        errors.extend(check_addresses(setting))
    hour = settings.POPC_DIGEST_HOUR
    if hour is not None and not 0 <= hour <= 23:
        errors.append(
            checks.Error(
                f"POPC_DIGEST_HOUR={hour}: give an hour of the day from 0 to 23 (UTC)",
                id="alerts.E003",
            )
        )
    if not 1 <= settings.POPC_CHANNEL_TIMEOUT <= MAX_CHANNEL_TIMEOUT:
        errors.append(
            checks.Error(
                f"POPC_CHANNEL_TIMEOUT={settings.POPC_CHANNEL_TIMEOUT}: give 1 to "
                f"{MAX_CHANNEL_TIMEOUT} seconds",
                id="alerts.E004",
            )
        )
    return errors


def check_addresses(setting: str) -> list[checks.CheckMessage]:
    errors = []
    for address in getattr(settings, setting):
        try:
            validate_email(address)
        except ValidationError:
            errors.append(
                checks.Error(f"{setting}: {address!r} is no email address", id="alerts.E002")
            )
    return errors
