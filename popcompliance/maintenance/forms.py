"""The maintenance window form. Times are typed as YYYY-MM-DD HH:MM on the window's own clock
(its time zone), as the rule is read there too; they are stored in UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone

from popcompliance.inventory.models import Server, Tag
from popcompliance.maintenance.models import MaintenanceWindow
from popcompliance.maintenance.schedule import zone

TIME_FORMAT = "%Y-%m-%d %H:%M"
TIME_INPUT_FORMATS = [TIME_FORMAT, "%Y-%m-%dT%H:%M"]
TIME_FIELDS = ("starts_at", "ends_at")


def time_field(label: str, required: bool, help_text: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        input_formats=TIME_INPUT_FORMATS,
        widget=forms.DateTimeInput(
            attrs={"placeholder": "YYYY-MM-DD HH:MM", "inputmode": "numeric", "size": 18},
            format=TIME_FORMAT,
        ),
        help_text=help_text,
        error_messages={"invalid": "Write the moment as YYYY-MM-DD HH:MM, e.g. 2026-12-31 22:00."},
    )


class WindowForm(forms.ModelForm):
    """Create or edit a window: a name, exactly one of a server, a tag or a site, and when."""

    server = forms.ModelChoiceField(
        queryset=Server.objects.only("pk", "name"), required=False, empty_label="—"
    )
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, empty_label="—")
    site = forms.ChoiceField(required=False)
    starts_at = time_field(
        "Starts",
        True,
        "On the window's clock. Once: when it starts. Recurring: the first moment an "
        "occurrence may start; an RRULE also takes its time of day from it.",
    )
    ends_at = time_field("Ends", False, "Once only: when it ends, on the window's clock.")

    class Meta:
        model = MaintenanceWindow
        fields = [
            "name",
            "server",
            "tag",
            "site",
            "recurrence",
            "starts_at",
            "ends_at",
            "rule",
            "duration_minutes",
            "time_zone",
            "comment",
        ]
        widgets = {"comment": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"name": "What is done, as the pages and the history will say it."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sites = Server.objects.exclude(site="").values_list("site", flat=True).distinct()
        known = sorted({*sites, self.instance.site} - {""})
        self.fields["site"].choices = [("", "—"), *((site, site) for site in known)]
        self.fields["server"].help_text = "Choose one of a server, a tag or a site."
        if self.instance.pk:
            self._show_on_window_clock()

    def _show_on_window_clock(self) -> None:
        """Stored times are UTC; the form shows them as the window's clock reads them."""
        for name in TIME_FIELDS:
            moment: datetime | None = getattr(self.instance, name)
            if moment is not None:
                self.initial[name] = moment.astimezone(self.instance.zone).replace(tzinfo=None)

    def clean(self) -> dict[str, Any]:
        """The typed times are on the window's clock: read them in its time zone (an unknown
        zone is the model's error to report)."""
        cleaned = super().clean()
        try:
            clock = zone(cleaned.get("time_zone") or "UTC")
        except ValueError:
            return cleaned
        for name in TIME_FIELDS:
            typed = cleaned.get(name)
            if typed is not None:
                cleaned[name] = timezone.make_naive(typed).replace(tzinfo=clock)
        return cleaned
