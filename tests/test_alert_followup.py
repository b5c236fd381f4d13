"""What happens to an alert after it opened, end to end: a warning that turns into a failure
(and back), and a reminder that finds the problem gone. Real scans of emulated addresses behind
one name on the lab DNS, recording, alert processing and delivery to a real SMTP server."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from pop3lab.config import EndpointConfig
from popcompliance.alerts.models import Alert
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Policy, Server
from tests.conftest import lab_server
from tests.test_alerts import OWNER, PLAINTEXT, SECURE, SITE, alert_and_deliver

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]

OTHER_CERTIFICATE = EndpointConfig(cert_kind="ec256")
_names = (f"pop{n}.followup.example.test" for n in itertools.count())


class Cluster:
    """Addresses on one pair of ports, and the inventory server for a name on the lab DNS that
    resolves to the ones a test picks, as an admin editing the A records would."""

    def __init__(self, lab_dns, addresses, ports):
        self.dns, self.addresses, self.name = lab_dns, addresses, next(_names)
        self.server = lab_server("mail01", self.name, *ports, owner_emails=[OWNER])

    def resolve_to(self, *indexes):
        self.dns.zone[self.name] = {"A": [self.addresses[i] for i in indexes]}

    def scan(self):
        servers = [Server.objects.select_related("policy").get(pk=self.server.pk)]
        return scan_servers(servers)[self.server.pk]

    def record(self, report, purpose="scheduled"):
        record_report(self.server.pk, report, purpose=purpose)


@pytest.fixture
def new_cluster(db, emulated, lab_dns, settings):
    """Start a Cluster of emulated addresses, one per config; with `fixed`, on its ports and
    with its swappable address last."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    settings.SITE_URL = SITE
    settings.POPC_ALERT_RECIPIENTS = []

    def start(*configs, fixed=None):
        if fixed is None:
            endpoints = emulated.start_on_shared_ports(*configs)
            ports = endpoints[0].pop3_port, endpoints[0].pop3s_port
        else:
            ports = fixed.ports
            endpoints = [
                emulated.start(c, pop3_port=ports[0], pop3s_port=ports[1]) for c in configs
            ]
        addresses = [endpoint.address for endpoint in endpoints]
        return Cluster(lab_dns, addresses + ([fixed.address] if fixed else []), ports)

    return start


def judged(report, check_id, status):
    """The report with `check_id` judged `status`. No check the alert lifecycle handles can
    both warn and fail today (cert.validity can, but its warning never alerts), so the failure
    after a warning is written into a real scan's verdicts, as such a check would report it."""
    checks = tuple(
        dataclasses.replace(check, status=status) if check.id == check_id else check
        for check in report.checks
    )
    return dataclasses.replace(report, checks=checks)


def at(moment):
    return time_machine.travel(moment, tick=False)


def kinds(smtp_sink):
    """Each email's kind as its subject shows it: FAIL, now, Still, RECOVERED…"""
    return [mail.subject.split()[1] for mail in smtp_sink.received]


def warn_on_consistency(cluster, start):
    """Same certificate everywhere, then two scans (the second confirms) that see two
    certificates: cert.consistent goes pass → warn and, with alert_on_warn, opens an alert."""
    Policy.objects.filter(pk=cluster.server.policy_id).update(alert_on_warn=True)
    with at(start):
        cluster.resolve_to(0, 1)
        cluster.record(cluster.scan())
        alert_and_deliver()
    with at(start + timedelta(minutes=1)):
        cluster.resolve_to(0, 2)
        cluster.record(cluster.scan())
        cluster.record(cluster.scan(), purpose="confirmation")
        alert_and_deliver()


def fail_on_consistency(cluster):
    """Two scans (the second confirms) whose cert.consistent verdict is fail."""
    cluster.record(judged(cluster.scan(), "cert.consistent", "fail"))
    cluster.record(judged(cluster.scan(), "cert.consistent", "fail"), purpose="confirmation")
    alert_and_deliver()


def test_a_warning_that_turns_into_a_failure_escalates_the_same_alert(
    new_cluster, smtp_sink, django_user_model
):
    cluster = new_cluster(SECURE, SECURE, OTHER_CERTIFICATE)
    start = timezone.now()
    warn_on_consistency(cluster, start)
    operator = django_user_model.objects.create(username="operator")
    Alert.objects.get().acknowledge(operator, "new certificate rolls out next month")
    with at(start + timedelta(days=2)):
        fail_on_consistency(cluster)
    assert kinds(smtp_sink) == ["WARN", "now"]
    escalation = smtp_sink.received[1]
    assert escalation.subject == (
        "[PopCompliance] now FAIL mail01: cert.consistent (same certificate everywhere)"
    )
    assert "mail01 got worse: cert.consistent" in escalation.text
    assert "is now FAIL" in escalation.text and "warn -> fail" in escalation.text
    alert = Alert.objects.get()
    assert (alert.status, alert.state()) == ("fail", "open")


def test_reminders_after_an_escalation_count_from_it_at_the_failing_level(new_cluster, smtp_sink):
    cluster = new_cluster(SECURE, SECURE, OTHER_CERTIFICATE)
    start = timezone.now()
    warn_on_consistency(cluster, start)
    escalated = start + timedelta(hours=20)
    with at(escalated):
        fail_on_consistency(cluster)
    with at(escalated + timedelta(hours=23, minutes=59)):
        alert_and_deliver()
    assert kinds(smtp_sink) == ["WARN", "now"]
    with at(escalated + timedelta(hours=24, minutes=1)):
        alert_and_deliver()
    assert kinds(smtp_sink) == ["WARN", "now", "Still"]
    assert smtp_sink.received[2].subject.startswith("[PopCompliance] Still FAIL mail01")
    assert "mail01 still fails cert.consistent" in smtp_sink.received[2].text


def test_a_failure_that_eases_to_a_warning_lowers_the_alert_without_a_mail(new_cluster, smtp_sink):
    cluster = new_cluster(SECURE, SECURE, OTHER_CERTIFICATE)
    start = timezone.now()
    warn_on_consistency(cluster, start)
    with at(start + timedelta(minutes=2)):
        fail_on_consistency(cluster)
    with at(start + timedelta(minutes=3)):
        cluster.record(cluster.scan())  # warn again: an improvement settles at once
        alert_and_deliver()
    alert = Alert.objects.get()
    assert (alert.status, alert.resolved_at) == ("warn", None)
    with at(start + timedelta(hours=24, minutes=3)):
        alert_and_deliver()
    assert kinds(smtp_sink) == ["WARN", "now", "Still"]
    assert smtp_sink.received[2].subject.startswith("[PopCompliance] Still WARN mail01")
    assert "mail01 still warns on cert.consistent" in smtp_sink.received[2].text
    assert "still warns on same certificate everywhere</h1>" in smtp_sink.received[2].html


def test_a_reminder_that_finds_the_failing_address_gone_mails_one_recovery_instead(
    new_cluster, smtp_sink
):
    cluster = new_cluster(SECURE, PLAINTEXT)
    start = timezone.now()
    with at(start):
        cluster.resolve_to(0, 1)
        cluster.record(cluster.scan())  # a new server whose second address takes passwords
        alert_and_deliver()
    with at(start + timedelta(hours=1)):
        cluster.resolve_to(0)  # that address leaves DNS: its states go, with no Change
        cluster.record(cluster.scan())
        alert_and_deliver()
        assert Alert.objects.get().resolved_at is None
    for hours in (24, 48):
        with at(start + timedelta(hours=hours, minutes=1)):
            alert_and_deliver()
    assert kinds(smtp_sink) == ["FAIL", "RECOVERED"]
    assert "No address of mail01 shows the problem any more." in smtp_sink.received[1].text
    alert = Alert.objects.get()
    assert alert.resolved_at == start + timedelta(hours=24, minutes=1)
    assert (alert.resolved_by, alert.reminders_sent) == (None, 0)


def test_a_silent_alert_that_a_reminder_finds_gone_resolves_without_a_mail(
    new_cluster, fixed, smtp_sink, settings
):
    settings.POPC_FLAP_CHANGES = 2
    cluster = new_cluster(SECURE, fixed=fixed)
    cluster.resolve_to(0, 1)
    start = timezone.now()
    # Fails, recovers, fails again: the second alert opens silently on a flapping server.
    for minutes, config in enumerate([SECURE, PLAINTEXT, PLAINTEXT, SECURE, PLAINTEXT, PLAINTEXT]):
        with at(start + timedelta(minutes=minutes)), fixed.serving(config):
            cluster.record(cluster.scan())
            alert_and_deliver()
    with at(start + timedelta(minutes=10)):
        cluster.resolve_to(0)
        cluster.record(cluster.scan())
    with at(start + timedelta(hours=24, minutes=10)):
        alert_and_deliver()
    assert kinds(smtp_sink) == ["FAIL", "RECOVERED", "mail01"]
    assert "is flapping" in smtp_sink.received[2].subject
    silent = Alert.objects.get(silent=True)
    assert silent.resolved_at == start + timedelta(hours=24, minutes=10)
    assert silent.reminders_sent == 0
