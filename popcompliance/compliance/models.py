"""What the scans found, kept so that storage grows with changes, not with scans.

Each of them but certificates and snapshots is kept per probe location (popcompliance.locations):
what a server looks like from the DMZ and from outside are two sets of facts.

- CheckState: the current settled status per server × location × address × check (updated in
  place).
- Change: one row per real status change; the compliance history and the alert outbox.
- ScanRun: each scan with its raw facts, kept for POPC_SCAN_RUN_RETENTION_DAYS.
- Certificate / CertificateSighting: every leaf certificate seen, and where it is served.
- ServerAddress: the addresses a server's name resolved to, and what each looks like.
- FleetSnapshot: daily counts for trend charts. Heartbeat: when beat and workers last ran.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet
from django.urls import reverse

import scanner
from popcompliance.inventory.models import Server
from popcompliance.locations import DEFAULT_LOCATION
from scanner import PASSING, STATUS_RANK, login_type_label


class CheckStatus(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"
    ERROR = "error", "Error"
    SKIP = "skip", "Skip"


CHECK_COLOURS = {"pass": "green", "warn": "amber", "fail": "red", "error": "purple", "skip": "grey"}


def is_regression(previous: str, status: str) -> bool:
    """pass→warn, pass→fail, warn→fail: worse in the scanner's order, skip counting as pass.

    `error` is neither a regression nor a recovery: it means "could not determine" and
    follows its own rule (N consecutive runs). Nor is a first sighting (no previous status).
    """
    judged = set(STATUS_RANK) - {"error"}
    if previous not in judged or status not in judged or status in PASSING:
        return False
    return previous in PASSING or STATUS_RANK[status] > STATUS_RANK[previous]


class ServerAddress(models.Model):
    """One address a server resolved to from one location, with the product seen there."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="addresses")
    location = models.CharField(max_length=50, default=DEFAULT_LOCATION)
    address = models.CharField(max_length=45)
    product = models.CharField(max_length=100, blank=True)
    login_type = models.CharField(max_length=40, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["server", "location", "address"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "location", "address"], name="unique_server_location_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.address}"

    def get_absolute_url(self) -> str:
        return self.server.get_absolute_url()

    @property
    def login_type_label(self) -> str:
        return login_type_label(self.login_type, self.product)


class CheckState(models.Model):
    """The settled status of one check on one address of a server ("" = about the name), as
    seen from one location.

    A suspected regression or a run of errors is not settled yet: it is held as a candidate
    (`candidate_status`, counted in `candidate_count`) until it is confirmed, so one lost
    packet never reaches anybody's inbox.
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="check_states")
    location = models.CharField(max_length=50, default=DEFAULT_LOCATION)
    address = models.CharField(max_length=45, blank=True)
    check_id = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=CheckStatus.choices)
    summary = models.TextField()
    remediation = models.TextField(blank=True)
    since = models.DateTimeField()
    candidate_status = models.CharField(max_length=10, choices=CheckStatus.choices, blank=True)
    candidate_count = models.PositiveSmallIntegerField(default=0)
    candidate_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["server", "location", "address", "check_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "location", "address", "check_id"], name="unique_check_state"
            )
        ]
        indexes = [
            # Read by dashboard.queries.filtered_servers (_matching_states): the overview
            # filtered by check and result, an index-only probe per server instead of a scan
            # of every state.
            models.Index(fields=["check_id", "status", "server"], name="checkstate_check_status"),
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.address or '*'} {self.check_id}: {self.status}"

    def get_absolute_url(self) -> str:
        return self.server.get_absolute_url()

    @property
    def status_colour(self) -> str:
        return CHECK_COLOURS[self.status]

    @property
    def confirming(self) -> bool:
        """A regression or error was seen and awaits confirmation."""
        return bool(self.candidate_status)

    def hold(self, status: str, now: datetime) -> None:
        """Count one more observation of an unconfirmed status."""
        if self.candidate_status == status:
            self.candidate_count += 1
        else:
            self.candidate_status, self.candidate_count, self.candidate_since = status, 1, now

    def settle(self, status: str, now: datetime) -> None:
        self.status, self.since = status, now
        self.clear_candidate()

    def clear_candidate(self) -> None:
        self.candidate_status, self.candidate_count, self.candidate_since = "", 0, None


RETIRED_SUMMARY = {
    "address": "No longer probed: the name stopped resolving to this address.",
    "location": "No longer probed: the server is no longer probed from this location.",
}


def retire_states(states: QuerySet[CheckState], why: str, now: datetime) -> int:
    """Delete check states that stopped applying (`why`: "address" or "location"), leaving for
    each a Change to `skip` (from `skip` too: without it the state's earlier life would vanish
    from the history with it), so the history as of a later moment (compliance.history) does
    not show them as they last were. Those Changes are not alerted on: the alerts follow the states
    that remain. How many went."""
    retired = list(states.order_by())
    Change.objects.bulk_create(
        Change(
            server_id=state.server_id,
            location=state.location,
            address=state.address,
            check_id=state.check_id,
            previous_status=state.status,
            status=CheckStatus.SKIP,
            summary=RETIRED_SUMMARY[why],
            created_at=now,
            alerted_at=now,
        )
        for state in retired
    )
    CheckState.objects.filter(pk__in=[state.pk for state in retired]).delete()
    return len(retired)


class ScanPurpose(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    MANUAL = "manual", "Manual"
    CONFIRMATION = "confirmation", "Confirmation"


class ScanRun(models.Model):
    """One scan of one server from one location with its raw facts (the scanner's JSON report).

    Kept for POPC_SCAN_RUN_RETENTION_DAYS; the latest run of each server from each location is
    always kept. `error` is set when the scan itself crashed (a bug or a bad row), not when the
    server misbehaved: that is in the facts.
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="scan_runs")
    location = models.CharField(max_length=50, default=DEFAULT_LOCATION)
    purpose = models.CharField(max_length=20, choices=ScanPurpose.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    compliant = models.BooleanField(null=True)
    facts = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["server", "-started_at"], name="scanrun_server_recent")]

    def __str__(self) -> str:
        return f"{self.server} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    def get_absolute_url(self) -> str:
        return reverse("admin:compliance_scanrun_change", args=[self.pk])


class Change(models.Model):
    """One settled status change of one check: the history, and the outbox of alerts.

    Created only by compliance.recording when a status really changes (`previous_status` ""
    is the first observation of a check, recorded only when it is not a pass).
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="changes")
    location = models.CharField(max_length=50, default=DEFAULT_LOCATION)
    address = models.CharField(max_length=45, blank=True)
    check_id = models.CharField(max_length=40)
    previous_status = models.CharField(max_length=10, choices=CheckStatus.choices, blank=True)
    status = models.CharField(max_length=10, choices=CheckStatus.choices)
    summary = models.TextField()
    remediation = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)
    scan_run = models.ForeignKey(
        ScanRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="changes"
    )
    # When alerts.lifecycle handled this change (null: still in the alert outbox).
    alerted_at = models.DateTimeField(null=True, blank=True)
    # Recorded while a maintenance window covered the server (popcompliance.maintenance): its
    # alert emails are held until the window ends, and the history says so.
    during_maintenance = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["server", "-created_at"], name="change_server_recent"),
            # Read by alerts.lifecycle.process_pending_changes: the changes not yet alerted on.
            models.Index(
                fields=["server"], condition=Q(alerted_at__isnull=True), name="change_unalerted_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.check_id}: {self.previous_status or 'new'} → {self.status}"

    def get_absolute_url(self) -> str:
        return self.server.get_absolute_url()

    @property
    def regression(self) -> bool:
        return is_regression(self.previous_status, self.status)


class Certificate(models.Model):
    """A leaf certificate seen anywhere in the fleet, by SHA-256 fingerprint."""

    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    subject = models.TextField()
    issuer = models.TextField()
    common_name = models.CharField(max_length=255, blank=True)
    dns_names = models.JSONField(default=list)
    serial = models.CharField(max_length=100)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    key_type = models.CharField(max_length=20)
    key_bits = models.PositiveIntegerField()
    signature_hash = models.CharField(max_length=20, blank=True)
    self_signed = models.BooleanField()
    pem = models.TextField()
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["not_after"]

    def __str__(self) -> str:
        return f"{self.common_name or self.subject} ({self.fingerprint_prefix}…)"

    def get_absolute_url(self) -> str:
        return reverse("dashboard:certificate", args=[self.pk])

    @property
    def fingerprint_prefix(self) -> str:
        """Enough of the SHA-256 fingerprint to tell apart certificates of the same name."""
        return self.fingerprint_sha256[:16]


class CertificateSighting(models.Model):
    """Where a certificate is served: server, address, port (995 or 110 after STLS)."""

    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="sightings")
    server = models.ForeignKey(
        Server, on_delete=models.CASCADE, related_name="certificate_sightings"
    )
    address = models.CharField(max_length=45)
    port = models.PositiveIntegerField()
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["server", "address", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["certificate", "server", "address", "port"], name="unique_sighting"
            )
        ]

    def __str__(self) -> str:
        return f"{self.certificate} on {self.server} {self.address}:{self.port}"

    def get_absolute_url(self) -> str:
        return self.certificate.get_absolute_url()

    @property
    def entry_point(self) -> str:
        """The port and how TLS was reached there: "995", or "110 after STLS" / "143 after
        STARTTLS" on one of the server's cleartext ports. Reads the server (select it with the
        sighting)."""
        for protocol in scanner.CLIENT_PROTOCOLS:
            if self.port == getattr(self.server, protocol.cleartext_field):
                return f"{self.port} after {protocol.upgrade_command}"
        return str(self.port)


class FleetSnapshot(models.Model):
    """The fleet's counts on one day, for trend charts; one row per day, kept indefinitely."""

    day = models.DateField(unique=True)
    total = models.PositiveIntegerField(default=0)
    compliant = models.PositiveIntegerField(default=0)
    non_compliant = models.PositiveIntegerField(default=0)
    excepted = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)
    paused = models.PositiveIntegerField(default=0)
    new = models.PositiveIntegerField(default=0)
    failing_checks = models.JSONField(default=dict)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"fleet on {self.day}: {self.compliant}/{self.total} compliant"

    def get_absolute_url(self) -> str:
        return reverse("admin:compliance_fleetsnapshot_change", args=[self.pk])


class Heartbeat(models.Model):
    """When a background process last proved it was alive: "beat", "dispatcher" (with what it
    dispatched) or "worker <hostname>"."""

    name = models.CharField(max_length=200, unique=True)
    last_seen_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)
    # What went wrong in the process's last round, when it did (blank when it went fine): a
    # process that runs but fails must not look healthy.
    failure = models.CharField(max_length=500, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} at {self.last_seen_at:%Y-%m-%d %H:%M:%S}"

    def get_absolute_url(self) -> str:
        return reverse("admin:compliance_heartbeat_change", args=[self.pk])

    @property
    def has_run(self) -> bool:
        """False for a process that has only ever failed (see `fail`)."""
        return self.last_seen_at > EPOCH

    @classmethod
    def beat(cls, name: str, now: datetime, detail: str = "", failure: str = "") -> None:
        """The process `name` ran at `now`; `failure` says what went wrong in that round."""
        defaults = {"last_seen_at": now, "detail": detail, "failure": failure[:500]}
        if failure:
            defaults["failed_at"] = now
        cls.objects.update_or_create(name=name, defaults=defaults)

    @classmethod
    def fail(cls, name: str, now: datetime, failure: str) -> None:
        """The process `name` failed its round at `now`: it did not run, so `last_seen_at`
        stays when it last did."""
        updated = cls.objects.filter(name=name).update(failure=failure[:500], failed_at=now)
        if not updated:
            # Never ran: the epoch shows "never" rather than a success that did not happen.
            cls.objects.create(name=name, last_seen_at=EPOCH, failure=failure[:500], failed_at=now)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScanRequest(models.Model):
    """A "Scan now" by a person (dashboard or API): counted for their rate limit, and
    `joined` when it joined a scan already queued or running instead of starting one."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scan_requests"
    )
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="scan_requests")
    requested_at = models.DateTimeField(db_index=True)
    joined = models.BooleanField(default=False)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"scan of {self.server} requested at {self.requested_at:%Y-%m-%d %H:%M:%S}"
