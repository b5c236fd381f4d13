"""`manage.py create_api_token USERNAME`: create an API token for a user and print it.

The token is sent as `Authorization: Token <token>`; what it may do is the user's role. Only
its digest is stored, so it is printed this once: run the command again for another token.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from popcompliance.accounts.models import ApiToken
from popcompliance.audit.context import acting_as


class Command(BaseCommand):
    help = "Create an API token for an existing user and print it (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")
        parser.add_argument(
            "--days",
            type=int,
            default=settings.POPC_API_TOKEN_DAYS,
            help="Days until it expires; 0: never (default: POPC_API_TOKEN_DAYS).",
        )
        parser.add_argument(
            "--rotate", action="store_true", help="Revoke the user's other tokens first."
        )

    @acting_as("command create_api_token")
    def handle(
        self, *args: Any, username: str, name: str, days: int, rotate: bool, **options: Any
    ) -> None:
        if days < 0:
            raise CommandError("--days must be 0 (never expires) or more.")
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        if rotate:
            ApiToken.objects.filter(user=user).delete()
        _, token = ApiToken.issue(user, name[:100], timezone.now(), days or None)
        self.stdout.write(token)
