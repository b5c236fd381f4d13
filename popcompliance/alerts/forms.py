"""The alerts pages' forms: acknowledging an alert, which state's tab to show, and an alert
channel (its Apprise URL write-only, as the monitoring passwords are)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings

from popcompliance.alerts.channels import check_url
from popcompliance.alerts.models import AlertState, Channel, ChannelScope
from popcompliance.inventory.models import Tag
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


URL_HELP = (
    "An Apprise URL: workflows://… or the Teams Workflows address, https://hooks.slack.com/…, "
    "mmosts://…, jsons://… for a generic JSON webhook. It holds the webhook's secret: stored "
    "encrypted and never shown again."
)
KEEP_URL_HELP = "Leave blank to keep the stored URL ({redacted})."


class ChannelForm(forms.ModelForm):
    """Add or edit an alert channel (admin). The URL is checked as Apprise reads it; it is
    never rendered back, and blank on an edit keeps the stored one."""

    url = forms.CharField(
        label="Apprise URL",
        required=False,
        strip=True,
        # render_value=False: neither the page nor a failed submission sends the secret back.
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false", "size": 60}
        ),
        help_text=URL_HELP,
    )
    scope = forms.ChoiceField(
        choices=ChannelScope.choices, widget=forms.RadioSelect, label="Sends the alerts of"
    )
    tag = forms.ModelChoiceField(
        queryset=Tag.objects.all(), required=False, help_text="For “the servers of a tag”."
    )
    owner_email = forms.EmailField(
        required=False,
        label="Owner email",
        help_text="For “the servers of an owner”: an address among the servers' owner emails.",
    )

    class Meta:
        model = Channel
        fields = ["name", "url", "scope", "tag", "owner_email", "enabled"]
        help_texts = {"enabled": "A disabled channel gets nothing, not even what is queued."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.has_url:
            redacted = self.instance.url_redacted
            self.fields["url"].help_text = KEEP_URL_HELP.format(redacted=redacted)

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url and not self.instance.has_url:
            raise forms.ValidationError("Give the channel's Apprise URL.")
        if url:
            try:
                check_url(url)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope = data.get("scope")
        if scope == ChannelScope.TAG and not data.get("tag"):
            self.add_error("tag", "Choose the tag whose servers this channel hears about.")
        if scope == ChannelScope.OWNER and not data.get("owner_email"):
            self.add_error("owner_email", "Give the owner whose servers this channel hears about.")
        # Only the scope's own target is kept (the table's constraint, checked next, insists).
        if scope != ChannelScope.TAG:
            data["tag"] = None
        data["owner_email"] = (data.get("owner_email") or "").lower()
        if scope != ChannelScope.OWNER:
            data["owner_email"] = ""
        return data

    def save(self, commit: bool = True) -> Channel:
        channel: Channel = super().save(commit=False)
        data = self.cleaned_data
        channel.set_scope(data["scope"], data.get("tag"), data.get("owner_email") or "")
        if data["url"]:
            channel.set_url(data["url"])
        if commit:
            channel.save()
        return channel
