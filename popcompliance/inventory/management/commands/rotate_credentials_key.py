"""`manage.py rotate_credentials_key`: re-encrypt every stored monitoring password and alert
channel URL with the first key of POPC_CREDENTIALS_KEY, so the older keys can be dropped from
the list."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from popcompliance.alerts.models import Channel
from popcompliance.inventory.credentials import reencrypt
from popcompliance.inventory.models import Server
from popcompliance.inventory.rekeying import reencrypt_passwords


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored monitoring password and alert channel URL with the first key "
        "of POPC_CREDENTIALS_KEY. Secrets no key decrypts are listed and left alone."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = reencrypt_passwords(Server.objects.all(), reencrypt)
        self.stdout.write(f"Re-encrypted {result.count} monitoring password(s) with the first key.")
        channels = reencrypt_passwords(Channel.objects.all(), reencrypt, field="url_encrypted")
        self.stdout.write(f"Re-encrypted {channels.count} alert channel URL(s) with the first key.")
        problems = []
        if result.unreadable:
            problems.append(
                f"the monitoring password of {len(result.unreadable)} server(s) (set their "
                "passwords again: " + ", ".join(result.unreadable) + ")"
            )
        if channels.unreadable:
            problems.append(
                f"the URL of {len(channels.unreadable)} alert channel(s) (set their URLs "
                "again: " + ", ".join(channels.unreadable) + ")"
            )
        if problems:
            raise CommandError(
                "No key of POPC_CREDENTIALS_KEY decrypts "
                + "; nor ".join(problems)
                + ", left as they were."
            )
