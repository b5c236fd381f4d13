"""The overview's and the certificates page's filters (GET forms: reading, never changing)."""

from __future__ import annotations

from typing import Any

from django import forms

from popcompliance.dashboard.catalog import CHECK_GROUPS, CLEARTEXT_LABEL, SERVER_STATUS_ORDER
from popcompliance.dashboard.queries import CLEARTEXT

RESULT_CHOICES = [
    ("", "Any result"),
    ("problem", "Not passing (fail, warn or error)"),
    ("fail", "Fail"),
    ("warn", "Warn"),
    ("error", "Error (could not determine)"),
    ("pass", "Pass"),
    ("skip", "Skip (not applicable)"),
]
EXPOSURE_CHOICES = [("", "Any"), (CLEARTEXT, f"{CLEARTEXT_LABEL} on any protocol")]
SORT_CHOICES = [
    ("name", "Name A–Z"),
    ("-name", "Name Z–A"),
    ("status", "Worst status first"),
    ("site", "Site"),
    ("last_scan", "Least recently scanned"),
    ("-last_scan", "Most recently scanned"),
]


class OverviewFilter(forms.Form):
    """Which servers the matrix shows. Site and tag choices come from the database."""

    q = forms.CharField(required=False, label="Name or host", max_length=200)
    site = forms.ChoiceField(required=False)
    tag = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False)
    check = forms.ChoiceField(required=False)
    result = forms.ChoiceField(required=False, choices=RESULT_CHOICES)
    exposure = forms.ChoiceField(required=False, choices=EXPOSURE_CHOICES)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)

    def __init__(self, data: Any, *, sites: list[str], tags: list[str]) -> None:
        super().__init__(data)
        self.fields["site"].choices = [("", "Any site"), *((s, s) for s in sites)]
        self.fields["tag"].choices = [("", "Any tag"), *((t, t) for t in tags)]
        self.fields["status"].choices = [
            ("", "Any status"),
            *((s.value, s.label) for s in SERVER_STATUS_ORDER),
        ]
        self.fields["check"].choices = [
            ("", "Any check"),
            *(
                (group.name, [(check.id, f"{check.short} ({check.id})") for check in group.checks])
                for group in CHECK_GROUPS
            ),
        ]

    def filters(self) -> dict[str, str]:
        """The valid filters; an invalid form (a stale link) shows the whole fleet."""
        if not self.is_valid():
            return {}
        return {name: value for name, value in self.cleaned_data.items() if value}


class CertificateFilter(forms.Form):
    q = forms.CharField(required=False, label="Name or server", max_length=200)
    current = forms.BooleanField(required=False, label="Only certificates still served")

    def filters(self) -> dict[str, Any]:
        return self.cleaned_data if self.is_valid() else {}
