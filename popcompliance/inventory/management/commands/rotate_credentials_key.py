"""`manage.py rotate_credentials_key`: re-encrypt every stored monitoring password with the
first key of POPC_CREDENTIALS_KEY, so the older keys can be dropped from the list."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from popcompliance.inventory.credentials import reencrypt
from popcompliance.inventory.models import Server
from popcompliance.inventory.rekeying import reencrypt_passwords


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored monitoring password with the first key of "
        "POPC_CREDENTIALS_KEY. Passwords no key decrypts are listed and left alone."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = reencrypt_passwords(Server.objects.all(), reencrypt)
        self.stdout.write(f"Re-encrypted {result.count} monitoring password(s) with the first key.")
        if result.unreadable:
            raise CommandError(
                f"No key of POPC_CREDENTIALS_KEY decrypts the monitoring password of "
                f"{len(result.unreadable)} server(s), left as they were; set their passwords "
                "again: " + ", ".join(result.unreadable)
            )
