"""The Reports page's forms: which report to download (a GET form, reading only), and the
monthly schedule's recipients (admins)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

import scanner
from popcompliance.inventory.forms import email_list
from popcompliance.reports.formats import FORMATS
from popcompliance.reports.models import ReportSchedule
from popcompliance.reports.params import ReportParams, check_day, parse_profile, parse_scope

PROFILE_CHOICES = [("", "Each server's policy"), *((p.name, p.title) for p in scanner.PROFILES)]


def scope_choices(sites: list[str], tags: list[str], policies: list[str]) -> list[Any]:
    """`all`, then each site, tag and policy as the scope text parse_scope reads."""
    groups = (("Sites", "site", sites), ("Tags", "tag", tags), ("Policies", "policy", policies))
    return [
        ("all", "Every server"),
        *(
            (label, [(f"{kind}:{name}", name) for name in names])
            for label, kind, names in groups
            if names
        ),
    ]


class ReportForm(forms.Form):
    as_of = forms.DateField(
        label="As of",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The end of this day (default: now).",
    )
    scope = forms.ChoiceField(initial="all")
    profile = forms.ChoiceField(label="TLS profile", required=False, choices=PROFILE_CHOICES)
    format = forms.ChoiceField(choices=[(key, label) for key, (_, label) in FORMATS.items()])

    def __init__(self, data: Any, *, scopes: list[Any], now: datetime) -> None:
        super().__init__(data)
        self.now = now
        self.fields["scope"].choices = scopes

    def clean_as_of(self) -> date:
        day = self.cleaned_data["as_of"] or timezone.localdate(self.now)
        try:
            return check_day(day, self.now)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def params(self) -> ReportParams:
        data = self.cleaned_data
        return ReportParams(
            data["as_of"], parse_scope(data["scope"]), parse_profile(data["profile"])
        )


class ScheduleForm(forms.ModelForm):
    recipients_text = forms.CharField(
        label="Auditors' addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Separated by commas or semicolons. None: no monthly report.",
    )

    class Meta:
        model = ReportSchedule
        fields = ["scope", "tls_profile"]
        widgets = {"tls_profile": forms.Select(choices=PROFILE_CHOICES)}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["recipients_text"].initial = "; ".join(self.instance.recipients)
        self.fields["scope"].help_text = "all, site:NAME, tag:NAME or policy:NAME."

    def clean_recipients_text(self) -> list[str]:
        return email_list(self.cleaned_data["recipients_text"])

    def save(self, commit: bool = True) -> ReportSchedule:
        self.instance.recipients = self.cleaned_data["recipients_text"]
        return super().save(commit)
