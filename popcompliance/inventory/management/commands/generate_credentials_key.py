"""`manage.py generate_credentials_key`: print a new key for POPC_CREDENTIALS_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from popcompliance.inventory.credentials import generate_key


class Command(BaseCommand):
    help = (
        "Print a new random Fernet key for POPC_CREDENTIALS_KEY. To rotate, put it first in "
        "the list (NEW,OLD), restart, and run rotate_credentials_key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(generate_key())
