"""The numbers agree: on a fixture history (Change rows at known times), a report as of a past
day says what the dashboard's overview showed as of that day, and what the as-of layer says
for the end of it, in every format: the report's counts, the CSV's servers per status, the
XLSX's summary, the PDF's text and the API's JSON."""

from __future__ import annotations

import csv
import io
import subprocess
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import time_machine
from openpyxl import load_workbook

from popcompliance.compliance.history import counts_as_of, end_of_day, statuses_as_of
from popcompliance.compliance.models import Change, CheckState
from popcompliance.inventory.models import Policy, Server, ServerStatus
from popcompliance.reports.content import build_report
from popcompliance.reports.formats import csv_lines, pdf_bytes, xlsx_bytes
from popcompliance.reports.params import ReportParams, Scope

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)
CREATED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
BROKE = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)  # mail01 accepts passwords in the clear
FIXED = datetime(2026, 7, 5, 8, 30, tzinfo=UTC)  # ... until this fix
JUNE_30 = date(2026, 6, 30)
PLAINTEXT = "pop3.plaintext_login"


def server(name: str, status: str) -> Server:
    created = Server.objects.create(
        name=name, host=f"{name}.example.test", status=status, policy=Policy.default()
    )
    Server.objects.filter(pk=created.pk).update(created_at=CREATED, last_scan_at=CREATED)
    return created


def change(target: Server, previous: str, status: str, at: datetime) -> None:
    Change.objects.create(
        server=target,
        check_id=PLAINTEXT,
        previous_status=previous,
        status=status,
        summary=f"plaintext login {status}",
        remediation="Set-PopSettings -LoginType SecureLogin",
        created_at=at,
        alerted_at=at,
    )


@pytest.fixture
def history() -> None:
    """mail01 failed from 10 June to 5 July and passes now; mail02 has always passed."""
    mail01 = server("mail01", ServerStatus.COMPLIANT)
    mail02 = server("mail02", ServerStatus.COMPLIANT)
    for target in (mail01, mail02):
        CheckState.objects.create(
            server=target, check_id=PLAINTEXT, status="pass", since=CREATED, summary="refused"
        )
    change(mail01, "pass", "fail", BROKE)
    change(mail01, "fail", "pass", FIXED)
    CheckState.objects.filter(server=mail01).update(since=FIXED)


@pytest.mark.usefixtures("history")
def test_a_report_as_of_a_past_day_agrees_with_the_as_of_layer_in_every_format(tmp_path: Path):
    params = ReportParams(JUNE_30, Scope())
    with time_machine.travel(NOW, tick=False):
        moment = end_of_day(JUNE_30)
        expected = counts_as_of(moment, Server.objects.all())
        assert expected["non_compliant"] == 1 and expected["compliant"] == 1
        report = build_report(params, NOW)
        rows = list(csv.DictReader(io.StringIO("".join(csv_lines(params, NOW)))))
        book = load_workbook(io.BytesIO(xlsx_bytes(params, NOW)), read_only=True)
        pdf = pdf_bytes(params, NOW)
        statuses = statuses_as_of(moment, Server.objects.all())
    assert report.counts == expected
    assert [entry.server.name for entry in report.failing] == ["mail01"]
    assert report.failing[0].checks[0].since == BROKE
    per_server = {row["server"]: row["server_status"] for row in rows}
    assert per_server == {s.name: statuses[s.pk] for s in Server.objects.all()}
    assert dict(Counter(per_server.values())) == {k: v for k, v in expected.items() if v}
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row}
    assert (summary["Non-compliant"], summary["Compliant"]) == (1, 1)
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True).stdout
    assert b"Failing servers (1)" in text and b"mail01" in text


@pytest.mark.usefixtures("history")
def test_the_same_report_after_the_fix_lists_nothing_failing():
    with time_machine.travel(NOW, tick=False):
        report = build_report(ReportParams(date(2026, 7, 10), Scope()), NOW)
    assert report.failing == [] and report.counts["compliant"] == 2


@pytest.mark.usefixtures("history")
def test_the_report_the_api_and_the_overview_show_the_same_counts_for_a_past_day(viewer):
    with time_machine.travel(NOW, tick=False):
        overview = viewer.get("/", {"as_of": JUNE_30.isoformat()})
        api = viewer.get("/api/v1/reports/", {"as_of": JUNE_30.isoformat()}).json()
        report = build_report(ReportParams(JUNE_30, Scope()), NOW)
    assert overview.context["as_of"] == report.moment
    assert overview.context["counts"] == report.counts == api["by_status"]
    assert report.counts["non_compliant"] == 1
