"""`manage.py ensure_admin`: make sure there is an account to log in with, once.

The account comes from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD /
DJANGO_SUPERUSER_EMAIL (Django's own names for them); a password given there must pass the
password validators. Without a password, one is generated and printed this one time. When the
user already exists nothing changes and no password is shown: `make run` calls this on every
start. `--reset` gives the existing account a new generated password, printed once.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from popcompliance.audit.context import acting_as

DEFAULT_USERNAME = "admin"
RESET_HINT = "`manage.py ensure_admin --reset` sets a new one"


class Command(BaseCommand):
    help = "Create the admin account if it does not exist (see DJANGO_SUPERUSER_*)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Give the existing admin account a new generated password and print it.",
        )

    @acting_as("command ensure_admin")
    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or DEFAULT_USERNAME
        existing = get_user_model().objects.filter(username=username).first()
        if options["reset"]:
            self._reset(username, existing)
        elif existing is not None:
            self.stdout.write(
                f"Admin account {username!r} exists; its password is unchanged ({RESET_HINT})."
            )
        else:
            self._create(username)

    def _create(self, username: str) -> None:
        given = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if given:
            user_model = get_user_model()
            self._validate(given, user_model(username=username, email=email))
        password = given or secrets.token_urlsafe(18)
        get_user_model().objects.create_superuser(username=username, email=email, password=password)
        if given:
            self.stdout.write(f"Created admin account {username!r}; its password is the one set.")
        else:
            # The only time this password is ever shown: it is stored hashed.
            self._show(f"Created admin account {username!r} with password {password} ")

    def _reset(self, username: str, user: Any) -> None:
        if user is None:
            raise CommandError(
                f"There is no account {username!r} to reset; run `manage.py ensure_admin` "
                "without --reset to create it."
            )
        password = secrets.token_urlsafe(18)
        user.set_password(password)
        user.save(update_fields=["password"])
        self._show(f"Admin account {username!r} now has the password {password} ")

    @staticmethod
    def _validate(password: str, user: Any) -> None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(
                "DJANGO_SUPERUSER_PASSWORD is too weak: " + " ".join(exc.messages) + " "
                "Choose a stronger one, or unset it to have a password generated."
            ) from None

    def _show(self, message: str) -> None:
        self.stdout.write(self.style.WARNING(f"{message}(shown once; {RESET_HINT})."))
