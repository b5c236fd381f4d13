"""The audit log's filters, shared by the page (a form) and the API (a serializer) through
`filtered_entries`."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from popcompliance.audit.models import Action, AuditEntry
from popcompliance.audit.registry import OBJECT_TYPES

OBJECT_TYPE_CHOICES = [(object_type, object_type.capitalize()) for object_type in OBJECT_TYPES]


def filtered_entries(criteria: dict[str, Any]) -> QuerySet[AuditEntry]:
    """The entries matching the valid criteria (actor, object_type, object_id, action, since,
    until as dates, both days included, q: part of the object's name), newest first."""
    entries = AuditEntry.objects.all()
    for key, lookup in (
        ("actor", "actor_label"),
        ("object_type", "object_type"),
        ("object_id", "object_id"),
        ("action", "action"),
        ("q", "object_label__icontains"),
    ):
        if criteria.get(key) not in (None, ""):
            entries = entries.filter(**{lookup: criteria[key]})
    if criteria.get("since"):
        entries = entries.filter(at__gte=start_of(criteria["since"]))
    if criteria.get("until"):
        entries = entries.filter(at__lt=start_of(criteria["until"] + timedelta(days=1)))
    return entries.order_by("-at", "-id")


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class DateInput(forms.DateInput):
    input_type = "date"


class EntryFilterForm(forms.Form):
    """The page's filters, all optional; an invalid one is ignored rather than an error page."""

    actor = forms.ChoiceField(required=False, label="Who")
    object_type = forms.ChoiceField(
        required=False, label="Object", choices=[("", "Any"), *OBJECT_TYPE_CHOICES]
    )
    object_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    action = forms.ChoiceField(required=False, choices=[("", "Any"), *Action.choices])
    since = forms.DateField(required=False, label="From", widget=DateInput)
    until = forms.DateField(required=False, label="To", widget=DateInput)
    q = forms.CharField(required=False, label="Object name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Offers everyone who appears in the log (one query)."""
        super().__init__(*args, **kwargs)
        labels = AuditEntry.objects.order_by("actor_label").values_list("actor_label", flat=True)
        self.fields["actor"].choices = [("", "Anyone"), *((a, a) for a in labels.distinct())]

    def criteria(self) -> dict[str, Any]:
        """The valid filters' values."""
        self.is_valid()
        return self.cleaned_data
