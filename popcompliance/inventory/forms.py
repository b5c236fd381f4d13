"""Forms behind the inventory pages: filtering the server list, editing servers and policies,
and uploading a CSV file. Validation here words problems for the person at the keyboard; the
models keep the rules (Server.clean checks the host as the scanner would)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from cryptography import x509
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

import scanner
from popcompliance import locations
from popcompliance.inventory.credentials import account_errors
from popcompliance.inventory.models import PORT_FIELDS, Policy, Server, Tag
from popcompliance.limits import (
    PORT_MAX,
    PORT_MIN,
    SCAN_INTERVAL_MAX,
    SCAN_INTERVAL_MIN,
    validate_owner_count,
)

# People paste lists from mail clients and spreadsheets: accept both separators.
_LIST_SEPARATORS = re.compile(r"[;,]")
# The CSV upload is read into memory; 10,000 servers take about 1.5 MB.
MAX_CSV_BYTES = 10 * 1024 * 1024


def split_list(text: str) -> list[str]:
    """The `;`- or `,`-separated values of a text field, trimmed, without empties or repeats."""
    parts = (part.strip() for part in _LIST_SEPARATORS.split(text))
    return list(dict.fromkeys(part for part in parts if part))


def email_list(text: str) -> list[str]:
    """The addresses of a text field (split_list), each valid and not too many; a
    ValidationError naming the bad ones otherwise."""
    emails = split_list(text)
    bad = []
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            bad.append(email)
    if bad:
        raise ValidationError(f"Not a valid email address: {', '.join(bad)}.")
    validate_owner_count(emails)
    return emails


# The password's help when none is stored (a new server, or one without credentials).
NO_STORED_PASSWORD_HELP = "Needed with a username; it is stored encrypted and never shown."
PROTOCOLS_HELP = "The client protocols this server serves; only these are probed and judged."


def port_fields() -> dict[str, forms.IntegerField]:
    """A server's port fields, two per protocol (its cleartext port, then its implicit-TLS
    one), labelled and with the protocol's default ports. Range-checked here, before the model
    sees them: Server.clean() builds a scanner.Target, which would otherwise report a bad port
    as a problem with the host."""
    fields = {}
    for protocol in scanner.CLIENT_PROTOCOLS:
        for name, label, port in (
            (protocol.cleartext_field, protocol.label, protocol.cleartext_port),
            (protocol.implicit_tls_field, protocol.implicit_tls_label, protocol.implicit_tls_port),
        ):
            fields[name] = forms.IntegerField(
                min_value=PORT_MIN, max_value=PORT_MAX, initial=port, label=f"{label} port"
            )
    return fields


class ServerForm(forms.ModelForm):
    """Add or edit a server. Owners and tags are typed as text; unknown tags are created. The
    monitoring password is write-only: never rendered back, blank keeps the stored one."""

    protocols = forms.MultipleChoiceField(
        choices=[(protocol.name, protocol.label) for protocol in scanner.CLIENT_PROTOCOLS],
        widget=forms.CheckboxSelectMultiple,
        label="Protocols",
        help_text=PROTOCOLS_HELP,
        error_messages={"required": "Choose at least one protocol."},
    )
    scan_interval = forms.IntegerField(
        min_value=SCAN_INTERVAL_MIN,
        max_value=SCAN_INTERVAL_MAX,
        initial=60,
        help_text=f"Minutes between scans, {SCAN_INTERVAL_MIN} to {SCAN_INTERVAL_MAX} (7 days).",
    )
    owners = forms.CharField(
        required=False,
        label="Owner emails",
        help_text="Separated by ; or , — they receive this server's alerts.",
    )
    tag_names = forms.CharField(
        required=False,
        label="Tags",
        help_text="Separated by ; or , — new tags are created.",
    )
    monitor_username = forms.CharField(
        required=False,
        max_length=255,
        label="Username",
        help_text="A mailbox the login test may sign in to; a dedicated, unprivileged one.",
    )
    monitor_password = forms.CharField(
        required=False,
        strip=False,
        # render_value=False: a failed submission never sends the typed password back either.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="Password",
        help_text="Leave blank to keep the stored password.",
    )
    remove_monitor_credentials = forms.BooleanField(
        required=False, label="Remove the stored credentials"
    )

    MONITORING_FIELDSET = ("monitor_username", "monitor_password", "remove_monitor_credentials")
    SERVICES_FIELDSET = ("protocols", *PORT_FIELDS)

    class Meta:
        model = Server
        fields = [
            "name",
            "host",
            "service_name",
            "protocols",
            *PORT_FIELDS,
            "site",
            "policy",
            "scan_interval",
            "locations",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(port_fields())
        self._location_boxes()
        # Stored as "pop3,imap"; the checkboxes (and changed_data) compare lists of names.
        self.initial["protocols"] = [p.name for p in self.instance.declared_protocols]
        if self.instance.pk:
            self.fields["owners"].initial = "; ".join(self.instance.owner_emails)
            self.fields["tag_names"].initial = "; ".join(
                tag.name for tag in self.instance.tags.all()
            )
            self.fields["monitor_username"].initial = self.instance.monitor_username
        if not self.instance.has_monitor_password:
            self.fields["monitor_password"].help_text = NO_STORED_PASSWORD_HELP
        if not (self.instance.monitor_username or self.instance.has_monitor_password):
            del self.fields["remove_monitor_credentials"]  # nothing stored to remove

    def _location_boxes(self) -> None:
        """One box per declared probe location; no field at all while there is only the
        default one (the server keeps its `locations`)."""
        names = locations.declared()
        if len(names) < 2:
            del self.fields["locations"]
            return
        self.fields["locations"] = forms.MultipleChoiceField(
            choices=[(name, name) for name in names],
            widget=forms.CheckboxSelectMultiple,
            label="Probed from",
            help_text="The locations whose workers probe it (see POPC_LOCATIONS); its status "
            "is the worst over them.",
        )
        self.initial["locations"] = list(self.instance.probe_locations)

    def clean_locations(self) -> str:
        """The ticked locations as the model stores them, in the declared order."""
        try:
            return ",".join(locations.parse(",".join(self.cleaned_data["locations"])))
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    @property
    def main_fields(self) -> list[forms.BoundField]:
        """The visible fields outside the services and monitoring fieldsets."""
        grouped = {*self.SERVICES_FIELDSET, *self.MONITORING_FIELDSET}
        return [field for field in self.visible_fields() if field.name not in grouped]

    @property
    def service_rows(self) -> list[tuple[Any, forms.BoundField, forms.BoundField]]:
        """One row per protocol: its checkbox, its cleartext port, its implicit-TLS port."""
        boxes = {box.data["value"]: box for box in self["protocols"]}
        return [
            (boxes[p.name], self[p.cleartext_field], self[p.implicit_tls_field])
            for p in scanner.CLIENT_PROTOCOLS
        ]

    @property
    def monitoring_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.MONITORING_FIELDSET if name in self.fields]

    def clean_owners(self) -> list[str]:
        return email_list(self.cleaned_data["owners"])

    def clean_protocols(self) -> str:
        """The ticked protocols as the model stores them, in the catalog's order."""
        return ",".join(scanner.parse_protocols(self.cleaned_data["protocols"]))

    def clean_tag_names(self) -> list[str]:
        names = split_list(self.cleaned_data["tag_names"])
        for name in names:
            try:
                Tag(name=name).clean_fields()
            except ValidationError as exc:
                reason = " ".join(exc.message_dict["name"])
                raise ValidationError(f"Tag “{name}”: {reason}") from exc
        return names

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for field, message in self._monitoring_account_errors(data).items():
            self.add_error(field, message)
        return data

    def _monitoring_account_errors(self, data: dict[str, Any]) -> dict[str, str]:
        password = data.get("monitor_password") or None
        if data.get("remove_monitor_credentials"):
            if password:
                return {"monitor_password": "Either remove the credentials or give a new password."}
            return {}
        stored = self.instance.has_monitor_password
        return account_errors(data.get("monitor_username", ""), password, stored=stored)

    @transaction.atomic
    def save(self, commit: bool = True) -> Server:
        """Save the server with its owners and tags, creating the tags it names. An edit writes
        only the edited columns, so it never overwrites a status a worker settled meanwhile."""
        server = super().save(commit=False)
        server.owner_emails = self.cleaned_data["owners"]
        now = timezone.now()
        account_columns = self._apply_monitoring_account(server, now)
        if server.pk is None:
            server.save()
        else:
            rescheduled = self._reschedule(server, now, account_columns)
            fields = [*self._meta.fields, *account_columns, "owner_emails", "updated_at"]
            server.save(update_fields=[*fields, *rescheduled])
        names = self.cleaned_data["tag_names"]
        server.tags.set([Tag.objects.get_or_create(name=name)[0] for name in names])
        return server

    def _apply_monitoring_account(self, server: Server, now: datetime) -> tuple[str, ...]:
        """Apply the monitoring fieldset to `server`; the monitoring columns to save, none
        when the account is unchanged."""
        data = self.cleaned_data
        if data.get("remove_monitor_credentials"):
            return server.forget_monitoring_credentials()
        password = data["monitor_password"] or None  # blank keeps the stored one
        return server.set_monitoring_account(data["monitor_username"], password, now)

    def _reschedule(
        self, server: Server, now: datetime, account_columns: tuple[str, ...]
    ) -> list[str]:
        """["next_scan_at"] when the edit brings the next scan forward (the model's rule, also
        the API's): a new address, policy or monitoring account is scanned now, a shorter
        interval takes effect from now."""
        changed = [*self.changed_data, *account_columns]
        return ["next_scan_at"] if server.reschedule_after_edit(changed, now) else []


class PolicyForm(forms.ModelForm):
    """Create or edit a policy. `make_default` stands in for `is_default` so that moving the
    default from one policy to another is one step, not a constraint violation."""

    make_default = forms.BooleanField(
        required=False, label="Default policy", help_text="Used for servers added without one."
    )

    class Meta:
        model = Policy
        fields = [
            "name",
            "description",
            "warn_days",
            "critical_days",
            "tls_profile",
            "tls_enumeration_hours",
            "use_system_trust",
            "ca_bundle_pem",
            "allow_cleartext_port",
            "allow_cleartext_imap",
            "allow_cleartext_submission",
            "error_runs_before_unknown",
            "alert_on_warn",
        ]
        labels = {
            "use_system_trust": "Trust the system's CAs",
            "ca_bundle_pem": "CA bundle (PEM)",
            "allow_cleartext_port": "Allow port 110",
            "allow_cleartext_imap": "Allow port 143",
            "allow_cleartext_submission": "Allow port 587",
            "error_runs_before_unknown": "Failed runs before unknown",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "ca_bundle_pem": forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["make_default"].initial = self.instance.is_default

    def clean_ca_bundle_pem(self) -> str:
        """At least one certificate that loads, so the scanner never meets an unusable bundle."""
        text = self.cleaned_data["ca_bundle_pem"].strip()
        if not text:
            return ""
        try:
            certificates = x509.load_pem_x509_certificates(text.encode())
        except ValueError as exc:
            raise ValidationError(
                f"Not a PEM certificate bundle ({exc}). Paste one or more "
                "-----BEGIN CERTIFICATE----- blocks."
            ) from exc
        if not certificates:
            raise ValidationError("The bundle holds no certificate.")
        return text + "\n"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.is_default and not data.get("make_default"):
            self.add_error(
                "make_default", "There must be a default policy: make another one the default."
            )
        if data.get("use_system_trust") is False and not data.get("ca_bundle_pem"):
            self.add_error(
                "ca_bundle_pem",
                "With the system's CAs off, add a CA bundle: otherwise no certificate is trusted.",
            )
        return data

    @transaction.atomic
    def save(self, commit: bool = True) -> Policy:
        """Save the policy; when it becomes the default, the previous default stops being one."""
        policy = super().save(commit=False)
        if self.cleaned_data["make_default"] and not policy.is_default:
            # Saved, not .update()d, so that the audit log records the switch.
            for previous in Policy.objects.filter(is_default=True):
                previous.is_default = False
                previous.save(update_fields=["is_default"])
            policy.is_default = True
        policy.save()
        return policy


class CsvUploadForm(forms.Form):
    """A CSV file of servers, in the columns of popcompliance.inventory.csvio."""

    file = forms.FileField(label="CSV file")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_CSV_BYTES:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {MAX_CSV_BYTES:,}. "
                "Split it, or use `manage.py import_servers`."
            )
        return upload
