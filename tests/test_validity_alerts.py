"""cert.validity alerts: an expired certificate is an open alert like any failing check, and
is mailed once (by the expiry warnings, not again by the alert); a warning stays the expiry
emails' alone. Real scans of the emulator, real SMTP sink."""

from __future__ import annotations

import importlib

import pytest
from django.utils import timezone

from pop3lab.config import EndpointConfig
from popcompliance.alerts.expiry import check_expiry
from popcompliance.alerts.models import Alert
from popcompliance.inventory.models import Policy
from tests.test_alerts import SECURE, alert_and_deliver, make_server, scan_and_record

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]

EXPIRED = EndpointConfig(cert_kind="expired")


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    return make_server(fixed, settings, lab_dns)


def run_alerts_and_expiry():
    """Twice, as beat would over two minutes: nothing may be mailed twice."""
    for _ in range(2):
        check_expiry(timezone.now())
        alert_and_deliver()


def test_an_expired_certificate_opens_an_alert_mailed_once_by_the_expiry_warning(
    server, fixed, smtp_sink
):
    scan_and_record(server, fixed, EXPIRED)
    run_alerts_and_expiry()
    alert = Alert.objects.get(server=server, check_id="cert.validity")
    assert alert.state() == "open" and alert.status == "fail"
    assert "expired on" in alert.summary
    assert [m.subject.split(":")[0] for m in smtp_sink.received] == ["[PopCompliance] EXPIRED"]


def test_a_renewed_certificate_resolves_the_alert_with_one_recovery(server, fixed, smtp_sink):
    scan_and_record(server, fixed, EXPIRED)
    run_alerts_and_expiry()
    scan_and_record(server, fixed, SECURE)
    run_alerts_and_expiry()
    alert = Alert.objects.get(server=server, check_id="cert.validity")
    assert alert.resolved_at is not None
    subjects = [m.subject.split()[1] for m in smtp_sink.received]
    assert subjects == ["EXPIRED:", "RECOVERED"]
    assert "cert.validity" in smtp_sink.received[1].subject


def test_a_certificate_close_to_expiry_is_an_alert_without_an_alert_email(server, fixed, smtp_sink):
    scan_and_record(server, fixed, EndpointConfig(cert_kind="expiring_critical"))
    run_alerts_and_expiry()
    assert Alert.objects.get(check_id="cert.validity").status == "fail"
    [mail] = smtp_sink.received
    assert "within 7 days" in mail.subject


def test_a_warning_certificate_has_no_alert_even_when_warnings_alert(server, fixed, smtp_sink):
    Policy.objects.filter(pk=server.policy_id).update(alert_on_warn=True)
    expiring_soon = EndpointConfig(cert_kind="expiring_soon")
    scan_and_record(server, fixed, SECURE)
    scan_and_record(server, fixed, expiring_soon)
    scan_and_record(server, fixed, expiring_soon, purpose="confirmation")
    assert server.changes.filter(check_id="cert.validity", status="warn").exists()
    run_alerts_and_expiry()
    assert not Alert.objects.filter(check_id="cert.validity").exists()
    assert [m.subject for m in smtp_sink.received if "cert.validity" in m.subject] == []
    assert any("within 14 days" in m.subject for m in smtp_sink.received)


def test_critical_days_beyond_every_threshold_mail_the_alert_itself(server, fixed, smtp_sink):
    # 9 whole days left fails a 12-day policy; the closest expiry warning is the 14-day one,
    # which says "within 14 days", not that the certificate fails the policy.
    Policy.objects.filter(pk=server.policy_id).update(critical_days=12)
    scan_and_record(server, fixed, EndpointConfig(cert_kind="expiring_soon"))
    run_alerts_and_expiry()
    assert Alert.objects.get(check_id="cert.validity").status == "fail"
    subjects = [m.subject for m in smtp_sink.received]
    assert any(s.startswith("[PopCompliance] FAIL mail01: cert.validity") for s in subjects)
    assert any("within 14 days" in s for s in subjects)


def test_a_certificate_not_valid_yet_opens_an_alert_with_its_own_email(server, fixed, smtp_sink):
    scan_and_record(server, fixed, EndpointConfig(cert_kind="not_yet_valid"))
    run_alerts_and_expiry()
    assert "not valid before" in Alert.objects.get(check_id="cert.validity").summary
    [mail] = smtp_sink.received
    assert mail.subject.startswith("[PopCompliance] FAIL mail01: cert.validity")


def test_on_upgrade_a_certificate_expired_before_opens_its_alert_unmailed(server, fixed, smtp_sink):
    """The data migration hands back the Change an older release processed without alert."""
    from django.apps import apps

    migration = importlib.import_module(
        "popcompliance.alerts.migrations.0003_alert_failing_certificate_validity"
    )
    scan_and_record(server, fixed, EXPIRED)
    server.changes.update(alerted_at=timezone.now())
    migration.reopen_failing_validity(apps, None)
    alert_and_deliver()
    assert Alert.objects.get().check_id == "cert.validity"
    assert smtp_sink.received == []
