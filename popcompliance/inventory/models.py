"""Servers to scan and the policies that judge them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

import scanner
from popcompliance import locations
from popcompliance.inventory import credentials
from popcompliance.limits import (
    ERROR_RUNS_VALIDATORS,
    EXPIRY_DAYS_VALIDATORS,
    PORT_VALIDATORS,
    SCAN_INTERVAL_VALIDATORS,
    TLS_ENUMERATION_HOURS_VALIDATORS,
    validate_owner_count,
    validate_plain_text,
)

# Every port field of a server, by protocol: pop3_port, pop3s_port, imap_port, …
PORT_FIELDS: tuple[str, ...] = tuple(
    field
    for protocol in scanner.CLIENT_PROTOCOLS
    for field in (protocol.cleartext_field, protocol.implicit_tls_field)
)
TLS_PROFILE_CHOICES = [(profile.name, profile.title) for profile in scanner.PROFILES]


class Policy(models.Model):
    """The rules a server's facts are judged by (scanner.Policy), plus how patient the pipeline
    is before it believes bad news. Exactly one policy is the default for new servers."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_plain_text])
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    warn_days = models.PositiveIntegerField(default=30, validators=EXPIRY_DAYS_VALIDATORS)
    critical_days = models.PositiveIntegerField(default=7, validators=EXPIRY_DAYS_VALIDATORS)
    tls_profile = models.CharField(
        "TLS profile",
        max_length=40,
        choices=TLS_PROFILE_CHOICES,
        default=scanner.DEFAULT_PROFILE,
        help_text="The standard the accepted TLS versions, suites and key sizes are judged by.",
    )
    use_system_trust = models.BooleanField(
        default=True, help_text="Trust the operating system's CA store."
    )
    ca_bundle_pem = models.TextField(
        blank=True, help_text="Extra trust anchors (an enterprise CA), PEM."
    )
    allow_cleartext_port = models.BooleanField(
        default=True,
        help_text="Whether port 110 may answer at all; off means implicit TLS (995) only.",
    )
    allow_cleartext_imap = models.BooleanField(
        default=True,
        help_text="Whether IMAP4's port 143 may answer at all; off means implicit TLS (993) only.",
    )
    allow_cleartext_submission = models.BooleanField(
        default=True,
        help_text="Whether SMTP submission's port 587 may answer at all; off means implicit "
        "TLS (465) only.",
    )
    tls_enumeration_hours = models.PositiveSmallIntegerField(
        "TLS enumeration every (hours)",
        default=24,
        validators=TLS_ENUMERATION_HOURS_VALIDATORS,
        help_text="How often scheduled scans list every version and cipher suite again "
        "(about 70 connections per address for a Windows server); in between they reuse the "
        "last list while the server still negotiates the same TLS. Manual scans always list "
        "again. 0: at every scan.",
    )
    error_runs_before_unknown = models.PositiveSmallIntegerField(
        default=2,
        validators=ERROR_RUNS_VALIDATORS,
        help_text="Consecutive runs a check must fail to answer before it counts as unknown.",
    )
    alert_on_warn = models.BooleanField(
        default=False, help_text="Also alert when a check goes to warn."
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_policy"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:inventory_policy_change", args=[self.pk])

    def clean(self) -> None:
        try:
            self.as_scanner_policy()
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    @property
    def profile(self) -> scanner.TlsProfile:
        """The named standard this policy judges TLS by (its title, source and rules)."""
        return scanner.profile_named(self.tls_profile)

    def as_scanner_policy(self) -> scanner.Policy:
        return scanner.Policy(
            warn_days=self.warn_days,
            critical_days=self.critical_days,
            tls_profile=self.tls_profile,
            use_system_trust=self.use_system_trust,
            ca_bundle_pem=self.ca_bundle_pem or None,
            allow_cleartext_port=self.allow_cleartext_port,
            allow_cleartext_imap=self.allow_cleartext_imap,
            allow_cleartext_submission=self.allow_cleartext_submission,
        )

    @classmethod
    def default(cls) -> Policy:
        """The default policy (seeded by a migration; recreated if someone deleted it)."""
        policy = cls.objects.filter(is_default=True).first()
        if policy is None:
            policy, _ = cls.objects.get_or_create(
                name="Secure default", defaults={"is_default": True}
            )
        return policy


def scanner_guard() -> scanner.Settings:
    """The scanner's guard as the dashboard, its API and its workers apply it: loopback (the
    dashboard's own host) is refused unless POPC_SCAN_ALLOW_NETWORKS covers it."""
    return scanner.Settings(
        allow_networks=tuple(settings.POPC_SCAN_ALLOW_NETWORKS),
        refuse_loopback_unless_allowed_by="POPC_SCAN_ALLOW_NETWORKS",
    )


def default_policy_id() -> int:
    return Policy.default().pk


class Tag(models.Model):
    """A free label for grouping servers (role, environment, customer)."""

    name = models.CharField(max_length=50, unique=True, validators=[validate_plain_text])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ServerStatus(models.TextChoices):
    """A server's settled status. Stored on the server so lists filter and count cheaply."""

    NEW = "new", "New"
    COMPLIANT = "compliant", "Compliant"
    NON_COMPLIANT = "non_compliant", "Non-compliant"
    # Would be non-compliant, but every failing check is covered by a waiver in force
    # (popcompliance.waivers): neither compliant nor failing.
    EXCEPTED = "excepted", "Excepted"
    UNKNOWN = "unknown", "Unknown"
    PAUSED = "paused", "Paused"


STATUS_COLOURS = {
    ServerStatus.NEW: "grey",
    ServerStatus.COMPLIANT: "green",
    ServerStatus.NON_COMPLIANT: "red",
    ServerStatus.EXCEPTED: "blue",
    ServerStatus.UNKNOWN: "amber",
    ServerStatus.PAUSED: "grey",
}


def validate_owner_emails(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError("owner emails must be a list")
    validate_owner_count(value)
    for email in value:
        validate_email(email)


# The latest time a schedule can hold (a day short of Python's last, to stay clear of time
# zone shifts).
FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


def validate_protocols(value: str) -> None:
    try:
        scanner.parse_protocols(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def validate_locations(value: str) -> None:
    try:
        locations.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


class Server(models.Model):
    """One mail server to watch: where it is, the client protocols it serves (POP3 by default,
    IMAP4, SMTP submission) on which ports, who owns it, how often to scan it.

    `status` is settled: it changes only through `settle_status` after the pipeline has
    confirmed what it saw; with several locations it is the worst over them. Each location has
    its own schedule (ServerLocation), which the dispatcher claims; `next_scan_at` is the
    earliest of them, kept for the pages, and an edit that sets it sooner (an edit calling for
    a rescan, a resume) brings every location's scan forward with it (see `save`).
    """

    name = models.CharField(max_length=200, unique=True, validators=[validate_plain_text])
    host = models.CharField(max_length=255, help_text="DNS name or IP address to probe.")
    service_name = models.CharField(
        max_length=255, blank=True, help_text="The name users connect to (default: host)."
    )
    protocols = models.CharField(
        max_length=40,
        default=",".join(scanner.DEFAULT_PROTOCOLS),
        validators=[validate_protocols],
        help_text="The client protocols it serves, comma-separated (pop3, imap, submission); "
        "only these are probed and judged.",
    )
    locations = models.CharField(
        max_length=200,
        default=locations.DEFAULT_LOCATION,
        validators=[validate_locations],
        help_text="The locations it is probed from, comma-separated (declared in "
        "POPC_LOCATIONS; `default` is where the plain workers run).",
    )
    pop3_port = models.PositiveIntegerField(default=110, validators=PORT_VALIDATORS)
    pop3s_port = models.PositiveIntegerField(default=995, validators=PORT_VALIDATORS)
    imap_port = models.PositiveIntegerField(default=143, validators=PORT_VALIDATORS)
    imaps_port = models.PositiveIntegerField(default=993, validators=PORT_VALIDATORS)
    submission_port = models.PositiveIntegerField(default=587, validators=PORT_VALIDATORS)
    submissions_port = models.PositiveIntegerField(default=465, validators=PORT_VALIDATORS)
    site = models.CharField(
        max_length=100, blank=True, db_index=True, validators=[validate_plain_text]
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="servers")
    owner_emails = models.JSONField(default=list, blank=True, validators=[validate_owner_emails])
    policy = models.ForeignKey(
        Policy, on_delete=models.PROTECT, related_name="servers", default=default_policy_id
    )
    paused = models.BooleanField(default=False)
    scan_interval = models.PositiveIntegerField(
        default=60, validators=SCAN_INTERVAL_VALIDATORS, help_text="Minutes between scans."
    )
    next_scan_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=20, choices=ServerStatus.choices, default=ServerStatus.NEW, db_index=True
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # The account of the authenticated login test (pop3.tls_login), only ever sent inside TLS.
    # The password is stored as a Fernet token (popcompliance.inventory.credentials), is never
    # shown back, and is set through set_monitor_password only.
    monitor_username = models.CharField(max_length=255, blank=True)
    monitor_password_encrypted = models.TextField(blank=True, editable=False)
    monitor_credentials_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    # Set while a claimed or requested scan is queued or running (the dispatcher's claim, a
    # "Scan now"), cleared when it is recorded: a second "Scan now" joins it meanwhile.
    scan_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Why the dispatcher could not dispatch this server last time; cleared when it can again.
    dispatch_error = models.CharField(max_length=500, blank=True, editable=False)
    dispatch_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            # Read by compliance.dispatch.claim_due_servers every minute: the due, unpaused
            # servers, soonest first.
            models.Index(
                fields=["next_scan_at"], condition=Q(paused=False), name="server_due_scan_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, then keep the per-location schedules in step: a new server, or a full save or
        one of `locations`, adds and removes them; a scan asked sooner (`scan_sooner`) moves
        each one that is later."""
        adding = self._state.adding
        super().save(*args, **kwargs)
        fields = kwargs.get("update_fields")
        if adding or fields is None or "locations" in fields:
            self.sync_locations(new=adding)
        sooner = self.__dict__.pop("_sooner", None)
        if sooner is not None and not adding and (fields is None or "next_scan_at" in fields):
            self.schedules.filter(next_scan_at__gt=sooner).update(next_scan_at=sooner)

    def get_absolute_url(self) -> str:
        return reverse("dashboard:server", args=[self.pk])

    def scan_sooner(self, due: datetime) -> None:
        """Ask for the next scan from every location at `due` at the latest (saved by `save`
        with `next_scan_at`)."""
        self.next_scan_at = due
        self._sooner = due

    @property
    def probe_locations(self) -> tuple[str, ...]:
        """The locations it is probed from (an unreadable value reads as `default`, so a bad
        row never stops its scans)."""
        try:
            return locations.parse(self.locations)
        except ValueError:
            return (locations.DEFAULT_LOCATION,)

    def sync_locations(self, new: bool = False) -> None:
        """Give each of its locations a schedule (due with the server when it is `new`, at once
        when a location is added later) and drop those of locations it no longer lists, with
        their check states and addresses: its status is judged over the locations it is probed
        from. Their history stays."""
        wanted = set(self.probe_locations)
        have = set(self.schedules.values_list("location", flat=True))
        if gone := have - wanted:
            self.schedules.filter(location__in=gone).delete()
            # Imported here: compliance's models build on this module's.
            from popcompliance.compliance.models import retire_states

            states = self.check_states.filter(location__in=gone)  # type: ignore[attr-defined]
            retire_states(states, "location", timezone.now())
            self.addresses.filter(location__in=gone).delete()  # type: ignore[attr-defined]
        due = self.next_scan_at if new else min(self.next_scan_at, timezone.now())
        ServerLocation.objects.bulk_create(
            [
                ServerLocation(server=self, location=name, next_scan_at=due)
                for name in wanted - have
            ],
            ignore_conflicts=True,
        )

    def clean(self) -> None:
        if not self.host:
            return  # the field's own "required" error says it; the scanner's would repeat it
        try:
            # Without credentials: the forms check those, and a password stored under an old
            # key must not block other edits.
            target = self.as_target(with_credentials=False)
        except ValueError as exc:
            raise ValidationError({"host": str(exc)}) from exc
        # Names are checked at scan time, on the addresses they resolve to.
        if target.host_is_ip and (refusal := scanner_guard().refusal(target.host)):
            raise ValidationError({"host": refusal})

    @property
    def status_colour(self) -> str:
        return STATUS_COLOURS[ServerStatus(self.status)]

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.scan_interval)

    def next_scan_after(self, now: datetime) -> datetime:
        """When the scan after one made at `now` is due. An interval past the calendar's end
        (rows written before the interval was bounded) yields its last representable day, so
        the row can never break the code that schedules it."""
        try:
            return now + self.interval
        except OverflowError:
            return FAR_FUTURE

    def as_target(self, *, with_credentials: bool = True) -> scanner.Target:
        """What the scanner probes, with the monitoring account when one is set. Decrypting
        its password raises credentials.UndecryptablePassword when no configured key can."""
        return scanner.Target(
            self.host,
            service_name=self.service_name or None,
            protocols=scanner.parse_protocols(self.protocols),
            credentials=self.monitoring_credentials() if with_credentials else None,
            **{field: getattr(self, field) for field in PORT_FIELDS},
        )

    @property
    def declared_protocols(self) -> tuple[scanner.ClientProtocol, ...]:
        """The protocols it serves, in the catalog's order (an unreadable value reads as the
        default, so a bad row never breaks a page)."""
        try:
            names = scanner.parse_protocols(self.protocols)
        except ValueError:
            names = scanner.DEFAULT_PROTOCOLS
        return tuple(p for p in scanner.CLIENT_PROTOCOLS if p.name in names)

    @property
    def has_monitor_password(self) -> bool:
        return bool(self.monitor_password_encrypted)

    def monitoring_credentials(self) -> scanner.Credentials | None:
        if not (self.monitor_username and self.has_monitor_password):
            return None
        password = credentials.decrypt(self.monitor_password_encrypted)
        return scanner.Credentials(self.monitor_username, password)

    def set_monitor_password(self, password: str, now: datetime) -> None:
        self.monitor_password_encrypted = credentials.encrypt(password)
        self.monitor_credentials_updated_at = now

    def set_monitoring_account(
        self, username: str, password: str | None, now: datetime
    ) -> tuple[str, ...]:
        """Sign the login test in as `username` with `password`, or with the stored password
        when it is None (the caller has checked the pair with credentials.account_errors).
        The columns to save: MONITORING_FIELDS when the account changed, else none, so an
        unchanged account never writes back a token `rotate_credentials_key` replaced
        meanwhile. The form and the API both edit the account through this."""
        if password is not None:
            self.set_monitor_password(password, now)
        elif username != self.monitor_username:
            self.monitor_credentials_updated_at = now
        else:
            return ()
        self.monitor_username = username
        return self.MONITORING_FIELDS

    def forget_monitoring_credentials(self) -> tuple[str, ...]:
        """Remove the monitoring account; the columns to save, MONITORING_FIELDS when there
        was one, else none."""
        had_one = bool(self.monitor_username or self.has_monitor_password)
        self.monitor_username = self.monitor_password_encrypted = ""
        self.monitor_credentials_updated_at = None
        return self.MONITORING_FIELDS if had_one else ()

    MONITORING_FIELDS = (
        "monitor_username",
        "monitor_password_encrypted",
        "monitor_credentials_updated_at",
    )
    # Edits after which the last verdict no longer describes the server: scan it again now.
    RESCAN_FIELDS = frozenset(
        {
            "host",
            "service_name",
            "protocols",
            *PORT_FIELDS,
            "policy",
            "monitor_username",
            "monitor_password_encrypted",
        }
    )

    @classmethod
    def edit_needs_rescan(cls, changed: Iterable[str]) -> bool:
        """True when an edit of the `changed` fields calls for an immediate scan."""
        return not cls.RESCAN_FIELDS.isdisjoint(changed)

    def reschedule_after_edit(self, changed: Iterable[str], now: datetime) -> bool:
        """After an edit of the `changed` fields (new values already set), bring the next scan
        forward where the scheduled one is stale: scan now after a RESCAN_FIELDS edit, and let
        a shorter interval take effect from now. The form and the API both edit through this.
        True when `next_scan_at` moved (the caller saves it)."""
        changed = set(changed)
        due = self.next_scan_at
        if self.edit_needs_rescan(changed):
            due = now
        elif "scan_interval" in changed:
            due = min(due, now + self.interval)
        if due == self.next_scan_at:
            return False
        self.scan_sooner(due)
        return True

    def settle_status(self, status: str, now: datetime) -> bool:
        """Record a settled status; True when it changed. Paused servers stay paused."""
        if self.paused or status == self.status:
            return False
        self.status, self.status_changed_at = status, now
        return True

    def pause(self, now: datetime) -> None:
        self.paused, self.status, self.status_changed_at = True, ServerStatus.PAUSED, now
        self.save(update_fields=["paused", "status", "status_changed_at", "updated_at"])

    def resume(self, now: datetime) -> None:
        """Unpause and scan soon; the status stays unknown until a scan settles it."""
        self.paused = False
        self.scan_sooner(now)
        self.status = ServerStatus.NEW if self.last_scan_at is None else ServerStatus.UNKNOWN
        self.status_changed_at = now
        self.save(
            update_fields=["paused", "status", "status_changed_at", "next_scan_at", "updated_at"]
        )


class ServerLocation(models.Model):
    """One server as probed from one location: that location's own schedule, so that each
    server × location is claimed, leased and scanned on its own (compliance.dispatch).

    Created and removed with the server's `locations` (Server.sync_locations); the dispatcher
    also creates the missing ones of a due server (servers inserted in bulk have none)."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="schedules")
    location = models.CharField(max_length=50)
    next_scan_at = models.DateTimeField()
    # Set while a claimed or requested scan from here is queued or running.
    scan_queued_at = models.DateTimeField(null=True, blank=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["server", "location"]
        constraints = [
            models.UniqueConstraint(fields=["server", "location"], name="unique_server_location")
        ]
        indexes = [
            # Read by compliance.dispatch.claim_due every minute: the due rows, soonest first.
            models.Index(fields=["next_scan_at"], name="serverlocation_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.server} from {self.location}"

    def get_absolute_url(self) -> str:
        return self.server.get_absolute_url()

    def finish_scan(self, scheduled: bool, now: datetime) -> list[str]:
        """A scan from here made at `now` was recorded (or crashed): no scan is queued any
        more, and a scheduled one sets the next time (its claim had moved it only a lease
        ahead; the server gives the interval) unless an edit or a resume meanwhile asked for
        one sooner (a time already reached): that scan of the new settings must not wait a
        whole interval. Manual and confirmation scans leave the schedule alone, so they never
        cut a claim's lease short. The columns to save."""
        self.scan_queued_at = None
        if not scheduled or self.next_scan_at <= now:
            return ["scan_queued_at"]
        self.next_scan_at = self.server.next_scan_after(now)
        return ["scan_queued_at", "next_scan_at"]


# The longest a background CSV import may run (its task's hard time limit): a job still
# "running" after that lost its worker.
IMPORT_TIME_LIMIT = timedelta(minutes=31)


class ImportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """A CSV import too large for one web request (over POPC_IMPORT_INLINE_ROWS rows): the
    uploaded text, run by a worker (inventory.tasks.import_servers), with its progress and its
    report of refused rows. The text is dropped once the import ends; the report stays until
    compliance.retention prunes the job after 30 days."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=ImportState, default=ImportState.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    done_rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    # [[line, reason], ...] of the refused rows, in the file's order.
    errors = models.JSONField(default=list, blank=True)
    failure = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import of {self.file_name or 'a CSV file'} ({self.get_state_display()})"

    def get_absolute_url(self) -> str:
        return reverse("inventory:import_job", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.state in (ImportState.DONE, ImportState.FAILED)

    @property
    def stalled(self) -> bool:
        """Still "running" past the task's time limit: its worker died (a new delivery of the
        task takes it over; importing again is safe)."""
        started = self.started_at
        return (
            self.state == ImportState.RUNNING
            and started is not None
            and (timezone.now() - started > IMPORT_TIME_LIMIT)
        )

    @property
    def percent(self) -> int:
        return 100 * self.done_rows // self.total_rows if self.total_rows else 0

    def record_progress(self, done: int, total: int, counts: dict[str, int]) -> None:
        """Save how far the worker got, for the page that polls it (one UPDATE)."""
        self.done_rows, self.total_rows = done, total
        for name, value in counts.items():
            setattr(self, name, value)
        self.save(update_fields=["done_rows", "total_rows", *counts])

    def end(self, state: str, errors: list[list[object]], failure: str = "") -> None:
        """Finish: the report stays, the uploaded text goes."""
        self.state, self.errors, self.failure = state, errors, failure
        self.finished_at, self.text = timezone.now(), ""
        self.save(update_fields=["state", "errors", "failure", "finished_at", "text"])
