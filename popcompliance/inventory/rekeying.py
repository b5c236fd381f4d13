"""Re-encrypting the stored monitoring passwords (and the alert channels' URLs, encrypted with
the same keys) under the first key of POPC_CREDENTIALS_KEY (credentials.py): all of them by
`manage.py rotate_credentials_key`, and after every `migrate` those that only a former key
reads, so that setting POPC_CREDENTIALS_KEY and restarting is the whole migration (`make run`
and the compose web service migrate on every start)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps as installed_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db.models import QuerySet

from popcompliance.inventory.credentials import UndecryptablePassword, former_key_token


@dataclass(frozen=True)
class Reencrypted:
    count: int
    # The names of the servers whose password no key decrypts (left as they were).
    unreadable: list[str]


def reencrypt_passwords(
    servers: QuerySet[Any],
    convert: Callable[[str], str | None],
    field: str = "monitor_password_encrypted",
) -> Reencrypted:
    """Replaces each stored token (in `field`) of `servers` (or channels) by convert(token),
    unless that is None. One query to read, one UPDATE per replaced token."""
    count, unreadable = 0, []
    stored = servers.exclude(**{field: ""}).only("name", field)
    for row in stored.iterator():
        try:
            token = convert(getattr(row, field))
        except UndecryptablePassword:
            unreadable.append(row.name)
            continue
        if token is not None:
            # Only if the token is still the one read, so a secret an admin set meanwhile wins.
            unchanged = servers.model._default_manager.using(servers.db).filter(
                pk=row.pk, **{field: getattr(row, field)}
            )
            count += unchanged.update(**{field: token})
    return Reencrypted(count, unreadable)


def move_off_former_keys(
    using: str, apps: Apps = installed_apps, verbosity: int = 1, **kwargs: Any
) -> None:
    """post_migrate (also sent by `flush`, without `apps`): once POPC_CREDENTIALS_KEY is set,
    re-encrypt under it the passwords that a key derived from SECRET_KEY (or from the
    development key) encrypted, since those keys no longer decrypt anything in use."""
    if not settings.POPC_CREDENTIALS_KEY:
        return
    try:
        server_model = apps.get_model("inventory", "Server")
    except LookupError:  # migrated back to before the inventory existed
        return
    if not any(field.name == "monitor_password_encrypted" for field in server_model._meta.fields):
        return
    moved = reencrypt_passwords(server_model._default_manager.using(using), former_key_token)
    if moved.count and verbosity:
        print(f"Moved {moved.count} monitoring password(s) to POPC_CREDENTIALS_KEY.")
    if moved.unreadable:
        print(
            "No key decrypts the monitoring password of these servers; set their passwords "
            "again: " + ", ".join(moved.unreadable),
            file=sys.stderr,
        )


def move_channels_off_former_keys(
    using: str, apps: Apps = installed_apps, verbosity: int = 1, **kwargs: Any
) -> None:
    """post_migrate of the alerts app: the same move for the alert channels' URLs."""
    if not settings.POPC_CREDENTIALS_KEY:
        return
    try:
        channel_model = apps.get_model("alerts", "Channel")
    except LookupError:  # migrated back to before channels existed
        return
    channels = channel_model._default_manager.using(using)
    moved = reencrypt_passwords(channels, former_key_token, field="url_encrypted")
    if moved.count and verbosity:
        print(f"Moved {moved.count} alert channel URL(s) to POPC_CREDENTIALS_KEY.")
    if moved.unreadable:
        print(
            "No key decrypts the URL of these alert channels; set their URLs again: "
            + ", ".join(moved.unreadable),
            file=sys.stderr,
        )
