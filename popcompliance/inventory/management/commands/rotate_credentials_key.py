"""`manage.py rotate_credentials_key`: re-encrypt every stored monitoring password with the
first key of POPC_CREDENTIALS_KEY, so the older keys can be dropped from the list."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from popcompliance.inventory.credentials import UndecryptablePassword, reencrypt
from popcompliance.inventory.models import Server


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored monitoring password with the first key of "
        "POPC_CREDENTIALS_KEY. Passwords no key decrypts are listed and left alone."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated, unreadable = 0, []
        stored = Server.objects.exclude(monitor_password_encrypted="")
        for server in stored.only("name", "monitor_password_encrypted").iterator():
            try:
                token = reencrypt(server.monitor_password_encrypted)
            except UndecryptablePassword:
                unreadable.append(server.name)
                continue
            rotated += self._replace(server, token)
        self.stdout.write(f"Re-encrypted {rotated} monitoring password(s) with the first key.")
        if unreadable:
            raise CommandError(
                f"No key of POPC_CREDENTIALS_KEY decrypts the monitoring password of "
                f"{len(unreadable)} server(s), left as they were; set their passwords again: "
                + ", ".join(unreadable)
            )

    @staticmethod
    def _replace(server: Server, token: str) -> int:
        # Only if the token is still the one read, so a password an admin set meanwhile wins.
        unchanged = Server.objects.filter(
            pk=server.pk, monitor_password_encrypted=server.monitor_password_encrypted
        )
        return unchanged.update(monitor_password_encrypted=token)
