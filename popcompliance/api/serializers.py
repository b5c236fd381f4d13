"""How the API shows and accepts servers, alerts and the fleet summary.

The list shape is a contract API clients rely on (docs/api.md); `checks` is read from prefetched
`check_states`, so a page of servers costs one query for the states, not one per server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

import scanner
from popcompliance.alerts.forms import COMMENT_MAX_LENGTH
from popcompliance.alerts.models import Alert, AlertState
from popcompliance.compliance import history
from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    Change,
    CheckState,
    ServerAddress,
)
from popcompliance.inventory import credentials
from popcompliance.inventory.models import PORT_FIELDS, Policy, Server, ServerStatus, Tag
from popcompliance.limits import (
    acknowledgement_until_problem,
    validate_owner_count,
    validate_plain_text,
)
from popcompliance.waivers.effect import shown_status

# What Server.clean reads (it builds the scanner's Target).
PROBED_FIELDS = ("host", "service_name", "protocols", *PORT_FIELDS)
COMPLIANT = {ServerStatus.COMPLIANT: True, ServerStatus.NON_COMPLIANT: False}


def worst_checks(states: list[CheckState]) -> dict[str, str]:
    """The worst status of each check over the server's addresses, by check id."""
    by_check: dict[str, list[str]] = {}
    for state in states:
        by_check.setdefault(state.check_id, []).append(state.status)
    return {check_id: scanner.worst_status(found) for check_id, found in sorted(by_check.items())}


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "enum": list(scanner.PROTOCOL_BY_NAME)},
        "minItems": 1,
        "example": ["pop3", "imap"],
    }
)
class ProtocolsField(serializers.ListField):
    """The client protocols a server serves, as a list of names (`["pop3", "imap"]`). The
    model stores them comma-separated in the catalog's order; a list in another order or with
    repeats means the same. An unknown name or an empty list is refused with one message."""

    child = serializers.CharField()
    default_error_messages = {
        "not_names": 'Expected a list of protocol names, such as ["pop3", "imap"].',
    }

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str | dict) or not hasattr(data, "__iter__"):
            self.fail("not_names")
        names = list(data)
        if not all(isinstance(name, str) for name in names):
            self.fail("not_names")
        try:
            return ",".join(scanner.parse_protocols(names))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: str) -> list[str]:
        try:
            return list(scanner.parse_protocols(value))
        except ValueError:
            return [value]  # shown as stored rather than hidden: it cannot be scanned


PROTOCOLS_HELP = (
    f"The client protocols the server serves, from {', '.join(scanner.PROTOCOL_BY_NAME)}; "
    "only these are probed and judged. Each has a cleartext port and an implicit-TLS port "
    "(pop3_port/pop3s_port, imap_port/imaps_port, submission_port/submissions_port)."
)


def port_help() -> dict[str, str]:
    """Each port field's description: whose door it is, and its default."""
    texts = {}
    for p in scanner.CLIENT_PROTOCOLS:
        texts[p.cleartext_field] = (
            f"{p.label}'s cleartext port (upgraded with {p.upgrade_command}); "
            f"default {p.cleartext_port}."
        )
        texts[p.implicit_tls_field] = (
            f"{p.implicit_tls_label} port (TLS from the first byte); default {p.implicit_tls_port}."
        )
    return texts


AS_OF_HELP = (
    "A past moment: a day (`2026-06-30`, the end of that day, UTC) or an ISO 8601 date and "
    "time. Statuses and checks are then rebuilt from the history as they were at that moment; "
    "names, sites and tags are today's. Omitted, or today: now."
)


class AsOfField(serializers.Field):
    """`?as_of=`: a day (its end) or a date and time; the moment, or None for now."""

    default_error_messages = {
        "invalid": "Give a day (2026-06-30) or an ISO 8601 date and time (2026-06-30T12:00Z)."
    }

    def to_internal_value(self, data: Any) -> datetime | None:
        when = _parse_moment(str(data))
        if when is None:
            self.fail("invalid")
        try:
            return history.moment(when)
        except history.HistoryPruned as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: Any) -> Any:
        return value


def _parse_moment(text: str) -> datetime | None:
    try:
        day = parse_date(text)  # a well-formed impossible day (30 February) raises
    except ValueError:
        return None
    if day is not None:
        return history.end_of_day(day)
    try:
        moment = parse_datetime(text)
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


@extend_schema_field({"type": "string", "example": "2026-06-30"})
class AsOfSchemaField(AsOfField):
    pass


class AsOfSerializer(serializers.Serializer):
    as_of = AsOfSchemaField(required=False, help_text=AS_OF_HELP)


class ServerFilterSerializer(AsOfSerializer):
    """The list's query parameters, all optional."""

    status = serializers.ChoiceField(choices=ServerStatus.choices, required=False)
    site = serializers.CharField(required=False)
    tag = serializers.CharField(required=False)
    search = serializers.CharField(required=False, help_text="Part of the server's name.")


class ServerSerializer(serializers.ModelSerializer):
    """A server as the list shows it."""

    protocols = ProtocolsField(read_only=True, help_text=PROTOCOLS_HELP)
    compliant = serializers.SerializerMethodField()
    checks = serializers.SerializerMethodField()

    class Meta:
        model = Server
        fields = [
            "id",
            "name",
            "host",
            "service_name",
            "protocols",
            "status",
            "compliant",
            "last_scan_at",
            "checks",
        ]

    def get_compliant(self, server: Server) -> bool | None:
        """True when compliant, False when not, null while new, unknown or paused."""
        return COMPLIANT.get(ServerStatus(server.status))

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "string"}, "example": {"x": "pass"}}
    )
    def get_checks(self, server: Server) -> dict[str, str]:
        """The worst status of each check; `excepted` where a waiver in force covers a fail
        or warn (the view puts the page's waived pairs in the context; as of a past moment,
        the history has applied the waivers in force then)."""
        as_of = self.context.get("as_of_checks")
        if as_of is not None:
            return dict(sorted(as_of.get(server.pk, {}).items()))
        waived = self.context.get("waived", frozenset())
        worst = worst_checks(list(server.check_states.all()))
        return {
            check_id: shown_status(status, (server.pk, check_id) in waived)
            for check_id, status in worst.items()
        }


class CheckStateSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="check_id")

    class Meta:
        model = CheckState
        fields = ["id", "status", "summary", "remediation", "location", "address", "since"]


class AddressSerializer(serializers.ModelSerializer):
    class Meta:
        model = ServerAddress
        fields = ["location", "address", "product", "login_type", "first_seen_at", "last_seen_at"]


class CertificateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Certificate
        fields = [
            "id",
            "fingerprint_sha256",
            "subject",
            "issuer",
            "common_name",
            "dns_names",
            "not_before",
            "not_after",
            "key_type",
            "key_bits",
            "self_signed",
        ]


class SightingSerializer(serializers.ModelSerializer):
    """Where the server serves a certificate, with the certificate."""

    certificate = CertificateSerializer()

    class Meta:
        model = CertificateSighting
        fields = ["address", "port", "first_seen_at", "last_seen_at", "certificate"]


class ChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Change
        fields = [
            "id",
            "check_id",
            "address",
            "previous_status",
            "status",
            "summary",
            "remediation",
            "created_at",
            "during_maintenance",
        ]


class ServerDetailSerializer(ServerSerializer):
    """One server with its checks, addresses, current certificates and recent history. The
    view attaches `recent_changes` and `current_sightings` (see views.ServerViewSet)."""

    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    tls_profile = serializers.CharField(
        source="policy.tls_profile",
        read_only=True,
        help_text="The TLS profile the server's policy judges it by (docs/checks.md).",
    )
    check_states = CheckStateSerializer(many=True, read_only=True)
    addresses = AddressSerializer(many=True, read_only=True)
    certificates = SightingSerializer(source="current_sightings", many=True, read_only=True)
    history = ChangeSerializer(source="recent_changes", many=True, read_only=True)
    monitor_password_set = serializers.BooleanField(source="has_monitor_password", read_only=True)

    class Meta(ServerSerializer.Meta):
        fields = [
            *ServerSerializer.Meta.fields,
            *PORT_FIELDS,
            "site",
            "tags",
            "owner_emails",
            "policy",
            "tls_profile",
            "paused",
            "scan_interval",
            "monitor_username",
            "monitor_password_set",
            "next_scan_at",
            "status_changed_at",
            "check_states",
            "addresses",
            "certificates",
            "history",
        ]


class ServerWriteSerializer(serializers.ModelSerializer):
    """Create or update a server (admin). The model's own rules (Server.clean: the host as
    the scanner reads it) apply too, reported under the field they concern."""

    tags = serializers.ListField(
        child=serializers.CharField(max_length=50, validators=[validate_plain_text]),
        required=False,
        write_only=True,  # shown by to_representation, from the relation
        help_text="Tag names; unknown ones are created.",
    )
    owner_emails = serializers.ListField(
        child=serializers.EmailField(), required=False, validators=[validate_owner_count]
    )
    policy = serializers.PrimaryKeyRelatedField(
        queryset=Policy.objects.all(), required=False, help_text="Default: the default policy."
    )
    protocols = ProtocolsField(required=False, help_text=f"{PROTOCOLS_HELP} Default: pop3.")
    monitor_password = serializers.CharField(
        write_only=True,
        required=False,
        allow_null=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text=(
            "Password of the monitoring account, for the login test over TLS (pop3.tls_login); "
            "only ever sent inside TLS, stored encrypted, never returned. Omitted: the stored "
            "one is kept. null: the stored account (username and password) is removed."
        ),
    )
    monitor_password_set = serializers.BooleanField(
        source="has_monitor_password", read_only=True, help_text="Whether a password is stored."
    )

    class Meta:
        model = Server
        fields = [
            "id",
            "name",
            "host",
            "service_name",
            "protocols",
            "locations",
            *PORT_FIELDS,
            "site",
            "tags",
            "owner_emails",
            "policy",
            "scan_interval",
            "monitor_username",
            "monitor_password",
            "monitor_password_set",
        ]
        extra_kwargs = {
            "monitor_username": {"help_text": "The monitoring account's username."},
            **{field: {"help_text": text} for field, text in port_help().items()},
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self._current_values() if self.instance is not None else {}
        # policy_id=None: the check needs no policy, and the default would cost a query.
        probe = Server(**{**current, **probe_fields(attrs)}, policy_id=None)
        try:
            probe.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if errors := self._monitoring_account_errors(attrs):
            raise serializers.ValidationError(errors)
        return attrs

    def _monitoring_account_errors(self, attrs: dict[str, Any]) -> dict[str, str]:
        removing = removes_monitoring_account(attrs)
        current = self.instance.monitor_username if self.instance else ""
        username = attrs.get("monitor_username", "" if removing else current)
        stored = bool(self.instance and self.instance.has_monitor_password) and not removing
        return credentials.account_errors(username, attrs.get("monitor_password"), stored=stored)

    def _current_values(self) -> dict[str, Any]:
        return {name: getattr(self.instance, name) for name in PROBED_FIELDS}

    def create(self, validated_data: dict[str, Any]) -> Server:
        tags = validated_data.pop("tags", [])
        # A new server has no account to keep or remove: a password (validated with its
        # username) is all there is to encrypt.
        password = validated_data.pop("monitor_password", None)
        server = Server(**validated_data)
        if password:
            server.set_monitor_password(password, timezone.now())
        server.save()
        server.tags.set(tag_objects(tags))
        return server

    def update(self, instance: Server, validated_data: dict[str, Any]) -> Server:
        """Write only the given columns, so an edit never overwrites a status a worker settled
        meanwhile; the next scan moves forward as after a form edit (reschedule_after_edit)."""
        tags = validated_data.pop("tags", None)
        now = timezone.now()
        changed = assign(instance, validated_data, now)
        fields = {*validated_data, *changed, "updated_at"}
        if instance.reschedule_after_edit(changed, now):
            fields.add("next_scan_at")
        instance.save(update_fields=fields)
        if tags is not None:
            instance.tags.set(tag_objects(tags))
        return instance

    def to_representation(self, instance: Server) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["tags"] = [tag.name for tag in instance.tags.all()]
        return data


def removes_monitoring_account(attrs: dict[str, Any]) -> bool:
    """A null `monitor_password` removes the stored account (username and password)."""
    return "monitor_password" in attrs and attrs["monitor_password"] is None


def assign(server: Server, attrs: dict[str, Any], now: datetime) -> list[str]:
    """Set the validated `attrs` on a stored `server`, the monitoring account through the model
    (which encrypts the password), taking it out of `attrs`; the names of the columns that
    changed."""
    if removes_monitoring_account(attrs):
        del attrs["monitor_password"]
        account_columns = server.forget_monitoring_credentials()
    else:
        password = attrs.pop("monitor_password", None)
        username = attrs.pop("monitor_username", server.monitor_username)
        account_columns = server.set_monitoring_account(username, password, now)
    changed = [name for name, value in attrs.items() if getattr(server, name) != value]
    for name, value in attrs.items():
        setattr(server, name, value)
    return [*changed, *account_columns]


def probe_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    """The validated values Server.clean looks at."""
    return {name: attrs[name] for name in PROBED_FIELDS if name in attrs}


def tag_objects(names: list[str]) -> list[Tag]:
    return [Tag.objects.get_or_create(name=name)[0] for name in dict.fromkeys(names)]


class ScanQueuedSerializer(serializers.Serializer):
    task_id = serializers.CharField(help_text="Blank when the request joined a queued scan.")
    server = serializers.IntegerField()
    purpose = serializers.CharField()
    joined = serializers.BooleanField(
        help_text="True when a scan of the server was already queued or running: the request "
        "joined it instead of starting another."
    )
    detail = serializers.CharField()


class AlertSerializer(serializers.ModelSerializer):
    server_name = serializers.CharField(source="server.name", read_only=True)
    state = serializers.SerializerMethodField()
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "server",
            "server_name",
            "check_id",
            "status",
            "state",
            "address",
            "summary",
            "remediation",
            "opened_at",
            "acknowledged_at",
            "acknowledged_by",
            "ack_comment",
            "ack_until",
            "resolved_at",
            "maintenance",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=AlertState.choices))
    def get_state(self, alert: Alert) -> str:
        return alert.state(self.context.get("now"))


class AlertFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=AlertState.choices, required=False, help_text="Default: open."
    )


class AcknowledgeSerializer(serializers.Serializer):
    """Why (required: the next person on call reads it) and, optionally, until when."""

    comment = serializers.CharField(max_length=COMMENT_MAX_LENGTH)
    until = serializers.DateTimeField(required=False, allow_null=True)

    def validate_until(self, until: Any) -> Any:
        if problem := acknowledgement_until_problem(until, self.context["now"]):
            raise serializers.ValidationError(problem)
        return until


class SummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    failing_checks = serializers.DictField(
        child=serializers.IntegerField(), help_text="Servers failing each check, by check id."
    )
    open_alerts = serializers.IntegerField()
