"""The server lists' filters (the overview's matrix and the inventory page share one) and the
certificates page's: GET forms, reading, never changing."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms

from popcompliance.compliance import history
from popcompliance.dashboard.catalog import CHECK_GROUPS, CLEARTEXT_LABEL, SERVER_STATUS_ORDER
from popcompliance.dashboard.queries import CLEARTEXT
from popcompliance.inventory.models import Policy

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
# Every key of queries.SORTS, both ways, as the sort menu words it.
SORT_CHOICES = [
    ("name", "Name A–Z"),
    ("-name", "Name Z–A"),
    ("status", "Worst status first"),
    ("-status", "Best status first"),
    ("site", "Site A–Z"),
    ("-site", "Site Z–A"),
    ("host", "Host A–Z"),
    ("-host", "Host Z–A"),
    ("policy", "Policy A–Z"),
    ("-policy", "Policy Z–A"),
    ("interval", "Shortest interval first"),
    ("-interval", "Longest interval first"),
    ("last_scan", "Least recently scanned"),
    ("-last_scan", "Most recently scanned"),
]
PER_PAGE_CHOICES = (25, 50, 100, 250)


class ServerFilter(forms.Form):
    """Which servers a server list shows (queries.filtered_servers), in which order and how
    many per page. Site and tag choices come from the database; each page renders the fields
    it offers."""

    q = forms.CharField(required=False, label="Search", max_length=200)
    site = forms.ChoiceField(required=False)
    tag = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False)
    policy = forms.ModelChoiceField(
        required=False, queryset=Policy.objects.only("pk", "name"), empty_label="Any policy"
    )
    check = forms.ChoiceField(required=False)
    result = forms.ChoiceField(required=False, choices=RESULT_CHOICES)
    exposure = forms.ChoiceField(required=False, choices=EXPOSURE_CHOICES)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    per_page = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=PER_PAGE_CHOICES[1],
        choices=[(n, n) for n in PER_PAGE_CHOICES],
        label="Per page",
    )

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

    def filters(self) -> dict[str, Any]:
        """The valid filters and sort (not the page size); an invalid form (a stale link) shows
        the whole fleet."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {name: value for name, value in data.items() if value and name != "per_page"}

    @property
    def sort_in_force(self) -> str:
        """The sort in force, for the column headers."""
        return self.filters().get("sort") or "name"

    @property
    def page_size(self) -> int:
        valid = self.is_valid()
        return (self.cleaned_data.get("per_page") if valid else None) or PER_PAGE_CHOICES[1]


class AsOfForm(forms.Form):
    """The overview's "as of" day: the fleet as it was at the end of that day, read-only."""

    as_of = forms.DateField(
        required=False,
        label="As of",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The fleet as it was at the end of that day; empty for now.",
    )

    def clean_as_of(self) -> date | None:
        day = self.cleaned_data.get("as_of")
        if day is not None:
            try:
                history.moment(history.end_of_day(day))
            except history.HistoryPruned as exc:
                raise forms.ValidationError(str(exc)) from exc
        return day

    @property
    def moment(self) -> datetime | None:
        """The moment asked for; None for now (no day, today, a future day or a bad one)."""
        if not self.is_valid() or self.cleaned_data["as_of"] is None:
            return None
        return history.moment(history.end_of_day(self.cleaned_data["as_of"]))


class CertificateFilter(forms.Form):
    q = forms.CharField(required=False, label="Name or server", max_length=200)
    current = forms.BooleanField(required=False, label="Only certificates still served")

    def filters(self) -> dict[str, Any]:
        return self.cleaned_data if self.is_valid() else {}
