"""`manage.py ensure_admin`: make sure there is an account to log in with, once.

The account comes from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD /
DJANGO_SUPERUSER_EMAIL (Django's own names for them). Without a password, one is generated and
printed this one time. A given password must pass the password validators (as in every form),
or nothing is created. When the user already exists nothing changes and no password is shown:
`make run` calls this on every start.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from popcompliance.audit.context import acting_as

DEFAULT_USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the admin account if it does not exist (see DJANGO_SUPERUSER_*)."

    @acting_as("command ensure_admin")
    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or DEFAULT_USERNAME
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Admin account {username!r} exists; its password is unchanged.")
            return
        given = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        password = given or secrets.token_urlsafe(18)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        user = users.model(username=username, email=email)
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(
                "DJANGO_SUPERUSER_PASSWORD is too weak: " + " ".join(exc.messages)
            ) from None
        users.create_superuser(username=username, email=email, password=password)
        if given:
            self.stdout.write(f"Created admin account {username!r}; its password is the one set.")
        else:
            # The only time this password is ever shown: it is stored hashed.
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin account {username!r} with password {password} "
                    "(shown once; change it after logging in)."
                )
            )
