"""A report quotes the probe's conversation behind each failing check: a real scan of an
emulated Exchange server taking passwords in the clear, recorded by the pipeline's own path,
then reported on."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pop3lab.config import EndpointConfig
from popcompliance.compliance.models import ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Server
from popcompliance.reports.content import build_report
from popcompliance.reports.formats import pdf_bytes
from popcompliance.reports.params import ReportParams, Scope
from tests.conftest import lab_server
from tests.people import make_user, token_for
from tests.test_reports import pdf_text

PLAINTEXT = EndpointConfig(login_type="PlainTextLogin", ntlm=False)


@pytest.fixture
def leaky(db, fixed, settings, lab_dns):
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    server = lab_server("cas-leaky", fixed.address, *fixed.ports)
    with fixed.serving(PLAINTEXT):
        reports = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    record_report(server.pk, reports[server.pk], purpose="scheduled")
    return server


def today() -> ReportParams:
    return ReportParams(timezone.localdate(), Scope())


def test_a_failing_check_carries_the_conversation_it_rests_on(leaky):
    report = build_report(today(), timezone.now())
    [entry] = report.failing
    check = next(c for c in entry.checks if c.check_id == "pop3.plaintext_login")
    assert check.in_the_clear
    # The greeting, and what our probe sent: nothing a password could hide in.
    assert any(line.startswith("S: +OK") for line in check.transcript)
    assert any(line.startswith("C: ") for line in check.transcript)
    assert not any("PASS " in line and "[redacted]" not in line for line in check.transcript)


def test_the_pdf_quotes_it_as_what_anyone_on_the_network_sees(leaky, tmp_path):
    text = pdf_text(pdf_bytes(today(), timezone.now()), tmp_path)
    assert "What anyone on the same network sees:" in text
    assert "S: +OK" in text


def test_without_the_scan_kept_the_summary_stands_alone(leaky):
    """Scans are pruned after POPC_SCAN_RUN_RETENTION_DAYS: a report of an older day quotes
    the summary only."""
    ScanRun.objects.all().delete()
    [entry] = build_report(today(), timezone.now()).failing
    check = next(c for c in entry.checks if c.check_id == "pop3.plaintext_login")
    assert check.transcript == [] and check.evidence


def test_the_api_quotes_it_too(leaky):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user('viewer', 'auditor'))}")
    body = client.get("/api/v1/reports/").json()
    [server] = body["failing"]
    check = next(c for c in server["checks"] if c["check_id"] == "pop3.plaintext_login")
    assert any(line.startswith("S: +OK") for line in check["transcript"])
