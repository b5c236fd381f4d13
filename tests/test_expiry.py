"""Certificate expiry warnings: each threshold once per certificate, travelled with
time_machine across 30, 14, 7 and 1 days and expiry; a renewed certificate starts afresh."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from pop3lab.config import EndpointConfig
from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.expiry import check_expiry
from popcompliance.alerts.models import ExpiryWarning
from popcompliance.compliance.models import Certificate, CertificateSighting
from tests.test_alerts import SECURE, make_server, scan_and_record

# The real SMTP server on loopback (the `smtp_sink` fixture).
pytest_plugins = ["tests.smtp"]


@pytest.fixture
def server(db, fixed, settings, lab_dns):
    return make_server(fixed, settings, lab_dns)


def warn_at(moment):
    """Run the hourly expiry check twice at `moment`, then deliver."""
    with time_machine.travel(moment, tick=False):
        check_expiry(moment)
        check_expiry(moment)
        deliver_pending()


def test_each_threshold_is_mailed_once(server, fixed, smtp_sink):
    scan_and_record(server, fixed, SECURE)
    expires = Certificate.objects.get().not_after
    warn_at(expires - timedelta(days=30, minutes=1))
    assert smtp_sink.received == []
    for days in (30, 14, 7, 1):
        warn_at(expires - timedelta(days=days))
        warn_at(expires - timedelta(days=days) + timedelta(minutes=1))
    warn_at(expires + timedelta(minutes=1))
    subjects = [mail.subject for mail in smtp_sink.received]
    assert [s.split(" expire")[1][:12] for s in subjects[:4]] == [
        "s within 30 ",
        "s within 14 ",
        "s within 7 d",
        "s within 1 d",
    ]
    assert subjects[4].startswith("[PopCompliance] EXPIRED: certificate mail.example.test")
    assert len(subjects) == 5
    assert all("mail01" in s for s in subjects)


def test_a_certificate_first_seen_close_to_expiry_gets_one_warning(server, fixed, smtp_sink):
    scan_and_record(server, fixed, SECURE)
    expires = Certificate.objects.get().not_after
    warn_at(expires - timedelta(days=5))
    [mail] = smtp_sink.received
    assert "within 7 days" in mail.subject
    assert "Enable-ExchangeCertificate -Thumbprint <thumb> -Services POP" in mail.text
    notified = dict(ExpiryWarning.objects.values_list("days", "notified"))
    assert notified == {30: False, 14: False, 7: True}


def test_a_renewed_certificate_starts_afresh_and_the_old_one_falls_silent(server, fixed, smtp_sink):
    scan_and_record(server, fixed, SECURE)
    old = Certificate.objects.get()
    warn_at(old.not_after - timedelta(days=29))
    scan_and_record(server, fixed, EndpointConfig(cert_kind="ec256"))
    new = Certificate.objects.exclude(pk=old.pk).get()
    warn_at(old.not_after - timedelta(days=28))
    warn_at(old.not_after - timedelta(days=13))
    fingerprints = [
        next(c.fingerprint_sha256 for c in (old, new) if c.fingerprint_sha256 in m.text)
        for m in smtp_sink.received
    ]
    assert fingerprints == [old.fingerprint_sha256, new.fingerprint_sha256, new.fingerprint_sha256]


def test_a_rerun_with_nothing_new_costs_two_queries_whatever_the_certificates(
    server, fixed, smtp_sink, django_assert_num_queries
):
    scan_and_record(server, fixed, SECURE)
    sighting = CertificateSighting.objects.select_related("certificate").get(port=fixed.ports[1])
    # Three more certificates served at other addresses of the same server (rows only).
    for n in range(3):
        certificate = sighting.certificate
        certificate.pk, certificate.fingerprint_sha256 = None, f"{n:064d}"
        certificate.save()
        sighting.pk, sighting.certificate = None, certificate
        sighting.address = f"127.0.9.{n + 1}"
        sighting.save()
    expires = Certificate.objects.order_by("not_after").first().not_after
    moment = expires - timedelta(days=5)
    warn_at(moment)
    assert ExpiryWarning.objects.filter(notified=True).count() == 4
    with time_machine.travel(moment, tick=False), django_assert_num_queries(2):
        assert check_expiry(moment) == 0
