"""The alerts page's forms: acknowledging an alert, and which state's tab to show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone

from popcompliance.alerts.models import AlertState
from popcompliance.limits import MAX_ACKNOWLEDGEMENT, acknowledgement_until_problem

# What <input type="datetime-local"> sends and expects (minutes are precise enough for a
# change window).
LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"
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
        input_formats=[LOCAL_INPUT_FORMAT],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_INPUT_FORMAT),
        help_text=(
            f"Optional, {settings.TIME_ZONE} time: reminders resume after this moment. "
            f"At most {MAX_ACKNOWLEDGEMENT.days} days ahead; leave it empty to stop them until "
            "the alert is resolved."
        ),
    )

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now
        # Browsers then refuse a past moment before sending; clean_until still decides.
        earliest = timezone.localtime(now).strftime(LOCAL_INPUT_FORMAT)
        self.fields["until"].widget.attrs["min"] = earliest

    def clean_until(self) -> datetime | None:
        until: datetime | None = self.cleaned_data.get("until")
        if problem := acknowledgement_until_problem(until, self.now):
            raise forms.ValidationError(problem)
        return until
