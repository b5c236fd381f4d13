"""The ranges of what people type, defined once: the models carry these validators, and the
forms, the API and the CSV import read them from the models (docs/limits.md lists them).

A number without an upper bound reaches the database or the dispatcher's date arithmetic and
fails there, as a server error instead of a message; a name with a right-to-left override or a
zero-width character shows something else than it holds.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

PORT_MIN, PORT_MAX = 1, 65535
# A week is the longest gap after which a regression is still news; a minute is the
# dispatcher's own period.
SCAN_INTERVAL_MIN, SCAN_INTERVAL_MAX = 1, 7 * 24 * 60
# Public certificates live at most 398 days; warning earlier than a year ahead is noise.
EXPIRY_DAYS_MIN, EXPIRY_DAYS_MAX = 0, 365
# More patience than a day of hourly scans hides an outage instead of smoothing a blip.
ERROR_RUNS_MIN, ERROR_RUNS_MAX = 1, 24
# The full TLS enumeration is redone at least weekly; 0 means at every scan.
TLS_ENUMERATION_HOURS_MIN, TLS_ENUMERATION_HOURS_MAX = 0, 7 * 24
# Every owner receives every alert of the server; a longer list is a mailing list's job.
MAX_OWNERS = 50
# An acknowledgement stops reminders; one that outlives a year is a forgotten one.
MAX_ACKNOWLEDGEMENT = timedelta(days=365)
# Each occurrence of a recurring maintenance window: one longer than a week is a pause.
MAINTENANCE_MINUTES_MIN, MAINTENANCE_MINUTES_MAX = 1, 7 * 24 * 60

# Control (Cc), format (Cf: bidi overrides and isolates, zero-width characters, the BOM),
# line and paragraph separators (Zl, Zp): invisible or reordering characters.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def between(low: int, high: int) -> list[MinValueValidator | MaxValueValidator]:
    """The validators of an inclusive range, which forms, DRF and the CSV import all read."""
    return [MinValueValidator(low), MaxValueValidator(high)]


PORT_VALIDATORS = between(PORT_MIN, PORT_MAX)
SCAN_INTERVAL_VALIDATORS = between(SCAN_INTERVAL_MIN, SCAN_INTERVAL_MAX)
EXPIRY_DAYS_VALIDATORS = between(EXPIRY_DAYS_MIN, EXPIRY_DAYS_MAX)
ERROR_RUNS_VALIDATORS = between(ERROR_RUNS_MIN, ERROR_RUNS_MAX)
TLS_ENUMERATION_HOURS_VALIDATORS = between(TLS_ENUMERATION_HOURS_MIN, TLS_ENUMERATION_HOURS_MAX)
MAINTENANCE_MINUTES_VALIDATORS = between(MAINTENANCE_MINUTES_MIN, MAINTENANCE_MINUTES_MAX)


def validate_plain_text(value: str) -> None:
    """Refuse control and invisible formatting characters in a name, naming the first one."""
    for position, character in enumerate(value, start=1):
        if unicodedata.category(character) in _HIDDEN_CATEGORIES:
            name = unicodedata.name(character, "a control character")
            raise ValidationError(
                f"Contains an invisible or control character (U+{ord(character):04X}, "
                f"{name}) at position {position}: type the name with visible characters only.",
                code="hidden_character",
            )


def validate_owner_count(emails: list[str]) -> None:
    if len(emails) > MAX_OWNERS:
        raise ValidationError(
            f"{len(emails)} owner addresses; at most {MAX_OWNERS} are allowed. Send the alerts "
            "to a mailing list instead.",
            code="too_many_owners",
        )


def acknowledgement_until_problem(until: datetime | None, now: datetime) -> str | None:
    """Why an acknowledgement may not last until `until` (None: until resolved), or None."""
    if until is None:
        return None
    if until <= now:
        return (
            "Pick a moment in the future, or leave it empty to stop the reminders until the "
            "alert is resolved."
        )
    if until > now + MAX_ACKNOWLEDGEMENT:
        return (
            f"At most {MAX_ACKNOWLEDGEMENT.days} days ahead, or leave it empty to stop the "
            "reminders until the alert is resolved."
        )
    return None
