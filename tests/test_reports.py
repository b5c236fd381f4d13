"""Compliance reports: their content, the CSV, XLSX and PDF read back (the PDF rendered by
Poppler's pdftoppm and pdftotext), the numbers agreeing with the as-of counts, the command's
errors, the API and the Reports page."""

from __future__ import annotations

import csv
import io
import subprocess
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook
from PIL import Image
from rest_framework.test import APIClient

from popcompliance.audit.models import AuditEntry
from popcompliance.compliance.history import counts_as_of
from popcompliance.compliance.models import CheckState
from popcompliance.reports.content import build_report
from popcompliance.reports.formats import csv_lines, pdf_bytes, xlsx_bytes
from popcompliance.reports.models import ReportSchedule
from popcompliance.reports.params import ReportParams, Scope, parse_params
from popcompliance.waivers.models import Waiver
from tests.people import make_user, token_for
from tests.report_fleet import PLAINTEXT_FIX, PLAINTEXT_SUMMARY, TRUST_SUMMARY, make_fleet

pytestmark = pytest.mark.django_db

PAGE = reverse("reports:page")
SCHEDULE = reverse("reports:schedule")
API = "/api/v1/reports/"


@pytest.fixture
def fleet():
    return make_fleet(timezone.now())


def today_params(scope: Scope | None = None) -> ReportParams:
    return ReportParams(timezone.localdate(), scope or Scope())


def csv_rows(params: ReportParams) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO("".join(csv_lines(params, timezone.now())))))


def servers_by_status(rows: list[dict[str, str]]) -> dict[str, int]:
    """Distinct servers per server_status column, as an auditor would count the file."""
    return dict(Counter(status for _, status in {(r["server"], r["server_status"]) for r in rows}))


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in counts.items() if n}


def test_the_report_lists_failing_servers_with_evidence_since_and_remediation(fleet):
    report = build_report(today_params(), timezone.now())
    assert [entry.server.name for entry in report.failing] == ["leaky"]
    checks = {check.check_id: check for check in report.failing[0].checks}
    assert set(checks) == {"pop3.plaintext_login", "cert.trusted"}
    plaintext = checks["pop3.plaintext_login"]
    assert (plaintext.address, plaintext.evidence) == ("192.0.2.11", PLAINTEXT_SUMMARY)
    assert plaintext.since == fleet.since
    texts = {remedy.number: remedy.text for remedy in report.remediations}
    assert texts[plaintext.remediation] == PLAINTEXT_FIX
    assert report.counts["non_compliant"] == 1 and report.not_failing == 3


def test_the_report_counts_and_certificates_follow_its_scope(fleet):
    report = build_report(today_params(Scope("site", "london")), timezone.now())
    assert nonzero(report.counts) == {"unknown": 1, "new": 1}
    assert report.failing == [] and report.certificates == []
    everything = build_report(today_params(), timezone.now())
    assert [(c.name, c.servers, c.days_left) for c in everything.certificates] == [
        ("ok.example.test", ("ok",), 19)
    ]


def test_the_trend_covers_the_snapshots_up_to_the_day(fleet):
    report = build_report(today_params(), timezone.now())
    assert len(report.trend) == 10
    assert report.trend[-1]["day"] == timezone.localdate()
    assert report.trend_polyline.count(",") == 10


def test_building_a_report_takes_a_fixed_number_of_queries(fleet, django_assert_max_num_queries):
    # Statuses, servers, their ids, one batch's waivers and states, then one query per section.
    with django_assert_max_num_queries(10):
        build_report(today_params(), timezone.now())


def test_a_waived_failure_is_an_exception_not_a_failing_check(fleet):
    now = timezone.now()
    Waiver.objects.create(
        server=fleet.leaky,
        check_id="cert.trusted",
        justification="Internal CA, distributed to every client.",
        approver=make_user("admin", "ciso"),
        starts_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=90),
    )
    report = build_report(today_params(), now)
    [exception] = report.exceptions
    assert (exception.applies_to, exception.approver) == ("server leaky", "ciso")
    assert exception.justification.startswith("Internal CA")
    assert [c.check_id for c in report.failing[0].checks] == ["pop3.plaintext_login"]
    assert report.excepted == 1


def test_the_csv_counts_the_servers_as_the_as_of_layer_does(fleet):
    params = today_params()
    rows = csv_rows(params)
    assert servers_by_status(rows) == nonzero(counts_as_of(None, params.servers()))
    failing = [r for r in rows if r["status"] == "fail"]
    assert {(r["server"], r["check_id"], r["address"]) for r in failing} == {
        ("leaky", "pop3.plaintext_login", "192.0.2.11"),
        ("leaky", "cert.trusted", ""),
    }
    assert {r["remediation"] for r in rows if r["status"] == "pass"} == {""}


def test_the_csv_defuses_cells_a_spreadsheet_would_run(fleet):
    fleet.shaky.check_states.update(summary='=HYPERLINK("http://evil")')
    evidence = {r["evidence"] for r in csv_rows(today_params()) if r["server"] == "shaky"}
    assert '\'=HYPERLINK("http://evil")' in evidence


def test_the_xlsx_opens_and_agrees_with_the_csv(fleet):
    params = today_params()
    book = load_workbook(io.BytesIO(xlsx_bytes(params, timezone.now())), read_only=True)
    assert book.sheetnames == [
        "Summary",
        "Failing",
        "Checks",
        "Certificates",
        "Exceptions",
        "Method",
    ]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row}
    assert (summary["Non-compliant"], summary["Unknown"], summary["Servers"]) == (1, 1, 4)
    checks = list(book["Checks"].iter_rows(values_only=True))
    assert len(checks) - 1 == len(csv_rows(params))
    failing = list(book["Failing"].iter_rows(values_only=True))[1:]
    assert sorted(row[3] for row in failing) == ["cert.trusted", "pop3.plaintext_login"]


def test_a_control_character_from_a_scanned_server_does_not_break_the_xlsx(fleet):
    """A certificate's name is the scanned server's to choose; summaries quote it."""
    CheckState.objects.filter(server=fleet.leaky, check_id="cert.trusted").update(
        summary="the chain of CN=\x1b[31mevil\x07 does not validate"
    )
    book = load_workbook(io.BytesIO(xlsx_bytes(today_params(), timezone.now())), read_only=True)
    failing = list(book["Failing"].iter_rows(values_only=True))
    assert any("evil" in str(cell) for row in failing for cell in row)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True)
    return " ".join(done.stdout.decode().split())  # table cells wrap their text


def first_page_ink(pdf: bytes, tmp_path: Path) -> float:
    """The share of the first page's pixels that are not white, rendered by pdftoppm."""
    (tmp_path / "report.pdf").write_bytes(pdf)
    prefix = tmp_path / "page"
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "40",
            "-f",
            "1",
            "-l",
            "1",
            str(tmp_path / "report.pdf"),
            str(prefix),
        ],
        check=True,
    )
    shades = Image.open(next(tmp_path.glob("page*.png"))).convert("L").histogram()
    return sum(shades[:240]) / sum(shades)


def test_the_pdf_renders_with_ink_and_says_what_failed(fleet, tmp_path):
    pdf = pdf_bytes(today_params(), timezone.now())
    assert pdf.startswith(b"%PDF")
    assert first_page_ink(pdf, tmp_path) > 0.01
    text = pdf_text(pdf, tmp_path)
    for expected in ("Compliance report", "Failing servers (1)", "leaky", PLAINTEXT_SUMMARY):
        assert expected in text
    assert TRUST_SUMMARY in text and "ok.example.test" in text
    assert "never sent" in text and "Method" in text
    assert "The other 3 servers in scope fail no check" in text
    assert "{#" not in text and "{%" not in text


def test_parameters_are_refused_in_words(fleet):
    today = timezone.localdate()
    cases = {
        ("30/06/2026", "all", ""): "not a date: write it as YYYY-MM-DD",
        ("", "tag:nothing", ""): "No tag named 'nothing'. The tags are: exchange.",
        ("", "colour:red", ""): "is not a scope: write all, site:NAME",
        ("", "all", "strict"): "No TLS profile named 'strict'",
        ((today + timedelta(days=1)).isoformat(), "all", ""): "has not come yet",
        ((today - timedelta(days=3000)).isoformat(), "all", ""): "History is kept for",
    }
    for (day, scope, profile), message in cases.items():
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
            parse_params(day, scope, profile, timezone.now())


def test_a_profile_keeps_only_the_servers_it_judged(fleet):
    params = parse_params("", "all", "mozilla-modern", timezone.now())
    assert build_report(params, timezone.now()).total == 0
    params = parse_params("", "all", "mozilla-intermediate", timezone.now())
    assert build_report(params, timezone.now()).total == 4


def test_the_command_writes_each_format(fleet, tmp_path):
    for file_format in ("pdf", "csv", "xlsx"):
        out = tmp_path / f"report.{file_format}"
        call_command("report", "--scope", "tag:exchange", "--format", file_format, "-o", str(out))
        assert out.stat().st_size > 100
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert {r["server"] for r in rows} == {"ok", "leaky"}
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


def test_the_command_refuses_a_bad_date_or_scope_and_writes_nothing(fleet, tmp_path):
    out = tmp_path / "report.pdf"
    with pytest.raises(CommandError, match="not a date"):
        call_command("report", "--as-of", "2026-13-01", "-o", str(out))
    with pytest.raises(CommandError, match="No site named 'tokyo'"):
        call_command("report", "--scope", "site:tokyo", "-o", str(out))
    assert not out.exists()


def api_as(role: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user(role))}")
    return client


def test_the_api_needs_a_token_and_answers_json(fleet):
    assert APIClient().get(API).status_code == 401
    body = api_as("viewer").get(API, {"scope": "site:paris"}).json()
    assert (body["scope"], body["total"], body["by_status"]["non_compliant"]) == (
        "site:paris",
        2,
        1,
    )
    [server] = body["failing"]
    fixes = {check["check_id"]: check["remediation"] for check in server["checks"]}
    assert fixes["pop3.plaintext_login"] == PLAINTEXT_FIX
    assert body["certificates"][0]["servers"] == ["ok"]


def test_the_api_names_each_bad_parameter(fleet):
    response = api_as("viewer").get(API, {"as_of": "yesterday", "scope": "tag:x"})
    assert response.status_code == 400
    assert set(response.json()) == {"as_of", "scope"}


def test_the_api_serves_each_file_format(fleet):
    client = api_as("viewer")
    pdf = client.get(f"{API}pdf/", HTTP_ACCEPT="application/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"].startswith('attachment; filename="popcompliance-report-')
    streamed = client.get(f"{API}csv/", {"scope": "site:london"})
    text = b"".join(streamed.streaming_content).decode()
    assert {row["server"] for row in csv.DictReader(io.StringIO(text))} == {"shaky", "fresh"}
    xlsx = client.get(f"{API}xlsx/")
    assert xlsx.content[:2] == b"PK"
    assert client.get(f"{API}doc/").status_code == 404


def test_the_schema_documents_the_report_endpoints():
    paths = api_as("viewer").get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    assert "/api/v1/reports/" in paths and "/api/v1/reports/{file_format}/" in paths


def test_a_viewer_downloads_a_report_from_the_page(fleet, viewer):
    page = viewer.get(PAGE)
    assert page.status_code == 200 and b"Download report" in page.content
    response = viewer.get(PAGE, {"scope": "site:paris", "format": "csv", "as_of": ""})
    text = b"".join(response.streaming_content).decode()
    assert {row["server"] for row in csv.DictReader(io.StringIO(text))} == {"ok", "leaky"}


def test_the_page_refuses_a_day_to_come(fleet, viewer):
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = viewer.get(PAGE, {"scope": "all", "format": "pdf", "as_of": tomorrow.isoformat()})
    assert response.status_code == 200 and b"has not come yet" in response.content


def test_only_admins_set_the_monthly_recipients_and_the_audit_log_says_so(viewer, operator, admin):
    data = {"recipients_text": "audit@example.test; cfo@example.test", "scope": "all"}
    assert viewer.post(SCHEDULE, data).status_code == 403
    assert operator.post(SCHEDULE, data).status_code == 403
    assert admin.post(SCHEDULE, {**data, "recipients_text": "not an address"}).status_code == 200
    assert admin.post(SCHEDULE, data).status_code == 302
    assert ReportSchedule.current().recipients == ["audit@example.test", "cfo@example.test"]
    entry = AuditEntry.objects.get(object_type="report schedule")
    assert "audit@example.test" in str(entry.changes)
