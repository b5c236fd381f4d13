"""The certificates pages tell same-named certificates apart and say how TLS was reached."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from popcompliance.compliance.models import CertificateSighting
from tests.test_dashboard_views import ADDRESS, make_certificate, make_server

pytestmark = pytest.mark.django_db


def test_same_named_certificates_show_fingerprint_serial_and_issuer(viewer):
    for days, fingerprint, serial, issuer in [(5, "aa", "0A1B", "Old"), (300, "bb", "0C2D", "New")]:
        certificate = make_certificate("pop.example.com", days)
        certificate.fingerprint_sha256 = fingerprint * 32
        certificate.serial, certificate.issuer = serial, f"CN={issuer} CA"
        certificate.save()
    html = viewer.get(reverse("dashboard:certificates")).content.decode()
    assert "sha256 aaaaaaaaaaaaaaaa… · serial 0A1B" in html
    assert "sha256 bbbbbbbbbbbbbbbb… · serial 0C2D" in html
    assert "CN=Old CA" in html and "CN=New CA" in html


def test_a_certificate_served_after_stls_says_so_and_one_on_995_gives_its_port(viewer):
    server = make_server("mail01")
    certificate = make_certificate("pop.example.com", 60, server)  # on 995
    now = timezone.now()
    CertificateSighting.objects.create(
        certificate=certificate,
        server=server,
        address=ADDRESS,
        port=server.pop3_port,
        first_seen_at=now,
        last_seen_at=now,
    )
    for url in (reverse("dashboard:certificates"), certificate.get_absolute_url()):
        html = viewer.get(url).content.decode()
        assert "port 110 after STLS" in html
        assert "port 995<" in html or "port 995\n" in html
        assert "995 after STLS" not in html
