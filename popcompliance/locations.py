"""Probe locations: the networks servers are probed from.

A location is a Celery queue. Workers started with `-Q dmz` on a machine in the DMZ take the
scans of the location `dmz`; the location `default` is the queue plain workers consume (they
also run every other task), so a deployment that declares no location works as before.

Locations are declared in POPC_LOCATIONS (names, comma-separated); each server lists in its
`locations` field those it is probed from (`default` unless said otherwise). Scans, check
states, changes and addresses are kept per location; a server's status is the worst over them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.conf import settings

DEFAULT_LOCATION = "default"
# A queue name an operator can type on a command line: lower case, digits, '-' and '_'.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,48}")


def check_name(name: str) -> str:
    """`name` when it is a valid location name; ValueError saying why otherwise."""
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a location name: use lower-case letters, digits, '-' and '_' "
            "(at most 49 characters, starting with a letter or digit)."
        )
    return name


def declared() -> tuple[str, ...]:
    """Every location of this deployment: `default` first, then POPC_LOCATIONS in order."""
    names = [DEFAULT_LOCATION]
    for name in settings.POPC_LOCATIONS:
        if name not in names:
            names.append(name)
    return tuple(names)


def parse(value: str) -> tuple[str, ...]:
    """The locations a server's `locations` field lists ("default,dmz"), in the declared order.

    Empty means `default`. A name that is not declared in POPC_LOCATIONS is a ValueError that
    names the declared ones."""
    names = [part.strip() for part in value.split(",") if part.strip()] or [DEFAULT_LOCATION]
    known = declared()
    for name in names:
        check_name(name)
        if name not in known:
            raise ValueError(
                f"Unknown location {name!r}: the locations are {', '.join(known)} "
                "(declare more in POPC_LOCATIONS)."
            )
    return tuple(name for name in known if name in names)


def queue(location: str) -> str:
    """The Celery queue of a location: its own name, or Celery's default queue for `default`."""
    if location == DEFAULT_LOCATION:
        from popcompliance.celery import app

        return str(app.conf.task_default_queue)
    return location


def location_of_queue(name: str) -> str:
    """The location a queue serves (inverse of `queue`)."""
    from popcompliance.celery import app

    return DEFAULT_LOCATION if name == app.conf.task_default_queue else name


def label(location: str) -> str:
    """How pages name a location."""
    return "default location" if location == DEFAULT_LOCATION else f"location {location}"


def validate_all(names: Iterable[str]) -> None:
    """Raise ValueError for the first invalid name (settings check POPC_LOCATIONS with it)."""
    for name in names:
        check_name(name)
