"""The form an admin grants a waiver with. Times are typed as YYYY-MM-DD HH:MM in UTC (the
dashboard shows times in UTC); the start defaults to now, the expiry must be typed."""

from __future__ import annotations

from django import forms

import scanner
from popcompliance.inventory.models import Server, Tag
from popcompliance.maintenance.forms import time_field
from popcompliance.waivers.models import Waiver

CHECK_CHOICES = [("", "—"), *((spec.id, f"{spec.id}: {spec.title}") for spec in scanner.CATALOG)]


class WaiverForm(forms.ModelForm):
    """A new waiver: exactly one of a server or a tag, a check, why, and until when."""

    server = forms.ModelChoiceField(
        queryset=Server.objects.only("pk", "name"),
        required=False,
        empty_label="—",
        help_text="Choose one of a server or a tag.",
    )
    tag = forms.ModelChoiceField(
        queryset=Tag.objects.all(),
        required=False,
        empty_label="—",
        help_text="Every server with this tag, now and later.",
    )
    check_id = forms.ChoiceField(label="Check", choices=CHECK_CHOICES)
    starts_at = time_field("Starts (UTC)", True, "When the exception starts holding.")
    expires_at = time_field(
        "Expires (UTC)", True, "Mandatory, at most a year after the start; it ends by itself."
    )

    class Meta:
        model = Waiver
        fields = ["server", "tag", "check_id", "justification", "starts_at", "expires_at"]
        widgets = {"justification": forms.Textarea(attrs={"rows": 4})}
