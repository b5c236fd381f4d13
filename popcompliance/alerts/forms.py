"""The alerts page's forms: acknowledging an alert, and which state's tab to show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings

from popcompliance.alerts.models import AlertState
from popcompliance.limits import MAX_ACKNOWLEDGEMENT, acknowledgement_until_problem

# The acknowledgement's end is typed as ISO 8601 in UTC, as every time on the page reads
# (a datetime-local input would show the browser's locale format instead). Minutes are
# precise enough for a change window; the "T" form is accepted too.
UNTIL_FORMAT = "%Y-%m-%d %H:%M"
UNTIL_INPUT_FORMATS = [UNTIL_FORMAT, "%Y-%m-%dT%H:%M"]
COMMENT_MAX_LENGTH = 2000


def state_of(value: str | None) -> str:
    """The tab asked for by `?state=`; a missing or stale value shows the open alerts."""
    return value if value in AlertState.values else AlertState.OPEN


class AcknowledgeForm(forms.Form):
    """An operator's acknowledgement: why (required, since the next person on call reads it)
    and, optionally, when reminders should resume. `now` is the moment the request is judged
    at, so "in the future" means the same thing everywhere in one request."""

    comment = forms.CharField(
        label="Comment",
        max_length=COMMENT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What is known and what happens next: the next person on call reads this.",
        error_messages={"required": "Say why: a comment is required to acknowledge."},
    )
    until = forms.DateTimeField(
        label="Until",
        required=False,
        input_formats=UNTIL_INPUT_FORMATS,
        widget=forms.DateTimeInput(
            attrs={"placeholder": "YYYY-MM-DD HH:MM", "inputmode": "numeric", "size": 18},
            format=UNTIL_FORMAT,
        ),
        help_text=(
            f"Optional, as YYYY-MM-DD HH:MM in {settings.TIME_ZONE}: reminders resume after "
            f"this moment, at most {MAX_ACKNOWLEDGEMENT.days} days ahead. Leave it empty to stop "
            "them until the alert is resolved."
        ),
        error_messages={
            "invalid": "Write the moment as YYYY-MM-DD HH:MM, for example 2026-12-31 18:00."
        },
    )

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now

    def clean_until(self) -> datetime | None:
        until: datetime | None = self.cleaned_data.get("until")
        if problem := acknowledgement_until_problem(until, self.now):
            raise forms.ValidationError(problem)
        return until
