"""A report as a file: CSV (streamed row by row), XLSX (openpyxl's write-only mode) and PDF
(WeasyPrint, from the templates/reports/report.html page). The CSV and the XLSX's Checks sheet
have the same columns, one row per server × location × address × check as of the report's
moment (content.check_rows); the PDF lists the failing servers in full and counts the others.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from django.template.loader import render_to_string

import scanner
from popcompliance.inventory.csvio import formula_safe
from popcompliance.reports.content import Report, build_report, check_rows
from popcompliance.reports.params import ReportParams, moment_of

FORMATS = {
    "pdf": ("application/pdf", "PDF"),
    "csv": ("text/csv; charset=utf-8", "CSV"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "XLSX"),
}
COLUMNS = (
    "as_of", "server", "host", "site", "server_status", "location", "address", "check_id",
    "check", "status", "since", "evidence", "remediation",
)  # fmt: skip
# A passing or skipped check needs no remediation; leaving it out keeps 10,000 servers'
# files to a size a spreadsheet opens.
NO_REMEDIATION = ("pass", "skip")


def content_type(file_format: str) -> str:
    return FORMATS[file_format][0]


def filename(params: ReportParams, file_format: str) -> str:
    return f"{params.slug}.{file_format}"


# Rows written per chunk of the streamed CSV: one write per row would cost more than the row.
CHUNK_ROWS = 500


def _safe(cells: list[Any]) -> list[Any]:
    return [formula_safe(cell) if isinstance(cell, str) else cell for cell in cells]


def _as_of(params: ReportParams, now: datetime) -> tuple[datetime | None, str]:
    moment = moment_of(params.day, now)
    return moment, (moment or now).isoformat()


def check_cells(params: ReportParams, now: datetime) -> Iterator[list[Any]]:
    """The CSV's and the Checks sheet's rows (COLUMNS), formula-safe. The server's cells are
    made safe once per server; of a check's, only the texts from outside the catalog (the
    evidence and the remediation) can start like a formula."""
    moment, as_of = _as_of(params, now)
    server_pk, head = 0, []
    for row in check_rows(params, moment):
        server, check = row.server, row.check
        if server.pk != server_pk:
            server_pk = server.pk
            head = _safe([as_of, server.name, server.host, server.site, row.server_status])
        if check is None:
            yield head + [""] * (len(COLUMNS) - len(head))
            continue
        remediation = "" if check.status in NO_REMEDIATION else formula_safe(check.remediation)
        yield [
            *head,
            check.location,
            check.address,
            check.check_id,
            scanner.check_title(check.check_id),
            check.status,
            check.since.isoformat() if check.since else "",
            formula_safe(check.summary),
            remediation,
        ]


def csv_lines(params: ReportParams, now: datetime) -> Iterator[str]:
    """The CSV: a header, then the rows in chunks of CHUNK_ROWS, each written as the as-of
    layer yields its rows (for StreamingHttpResponse or a file)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for count, cells in enumerate(check_cells(params, now), start=1):
        writer.writerow(cells)
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_xlsx(params: ReportParams, now: datetime, out: IO[bytes]) -> None:
    """The XLSX: Summary, Failing (one row per failing check), Checks (as the CSV),
    Certificates, Exceptions and Method sheets. Write-only mode keeps rows on disk, not in
    memory."""
    from openpyxl import Workbook

    report = build_report(params, now)
    book = Workbook(write_only=True)

    def sheet(title: str) -> CleanSheet:
        return CleanSheet(book.create_sheet(title))

    _summary_sheet(sheet("Summary"), report)
    _failing_sheet(sheet("Failing"), report)
    checks = sheet("Checks")
    checks.append(list(COLUMNS))
    for cells in check_cells(params, now):
        checks.append(cells)
    _certificates_sheet(sheet("Certificates"), report)
    _exceptions_sheet(sheet("Exceptions"), report)
    method = sheet("Method")
    for text in report.method.lines():
        method.append([text])
    book.save(out)


class CleanSheet:
    """A sheet whose texts lose the control characters an XLSX cannot hold: a certificate's
    name is the scanned server's to choose, and openpyxl refuses the whole file for one."""

    def __init__(self, sheet: Any) -> None:
        self.sheet = sheet

    def append(self, cells: list[Any]) -> None:
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        self.sheet.append(
            [ILLEGAL_CHARACTERS_RE.sub("\ufffd", c) if isinstance(c, str) else c for c in cells]
        )


def _summary_sheet(sheet: Any, report: Report) -> None:
    params = report.params
    sheet.append(["Compliance report", ""])
    sheet.append(["As of", report.moment.isoformat()])
    sheet.append(["Scope", str(params.scope)])
    sheet.append(["TLS profile", params.profile.title if params.profile else "each policy's"])
    sheet.append(["Servers", report.total])
    for line in report.count_lines:
        sheet.append([line.label, line.count])
    sheet.append(["With an exception (a check under one in force)", report.excepted])
    sheet.append(["Failing checks", report.failing_checks])
    sheet.append([])
    sheet.append(["Judged by TLS profile", "Servers"])
    for profile, count in report.profiles:
        sheet.append([profile.title, count])


FAILING_COLUMNS = (
    "server", "host", "site", "check_id", "check", "location", "address", "since", "evidence",
    "remediation",
)  # fmt: skip


def _failing_sheet(sheet: Any, report: Report) -> None:
    sheet.append(list(FAILING_COLUMNS))
    texts = {remedy.number: remedy.text for remedy in report.remediations}
    for entry in report.failing:
        for check in entry.checks:
            since = check.since.isoformat() if check.since else ""
            cells = [entry.server.name, entry.server.host, entry.server.site, check.check_id]
            cells += [check.title, check.location, check.address, since, check.evidence]
            sheet.append(_safe([*cells, texts[check.remediation]]))


def _certificates_sheet(sheet: Any, report: Report) -> None:
    sheet.append(["certificate", "issuer", "not_after", "days_left", "fingerprint", "servers"])
    for cert in report.certificates:
        cells = [cert.name, cert.issuer, cert.not_after.isoformat(), cert.days_left]
        sheet.append(_safe([*cells, cert.fingerprint, "; ".join(cert.servers)]))


def _exceptions_sheet(sheet: Any, report: Report) -> None:
    sheet.append(["applies_to", "check_id", "justification", "approver", "starts", "expires"])
    for entry in report.exceptions:
        cells = [entry.applies_to, entry.check_id, entry.justification, entry.approver]
        sheet.append(_safe([*cells, entry.starts_at.isoformat(), entry.expires_at.isoformat()]))


def render_html(report: Report) -> str:
    return render_to_string("reports/report.html", {"report": report})


def render_pdf(report: Report) -> bytes:
    """The report as a PDF. WeasyPrint lays out the page: no network (no base URL, the styles
    are inline)."""
    from weasyprint import HTML

    return HTML(string=render_html(report)).write_pdf()  # type: ignore[no-any-return]


def pdf_bytes(params: ReportParams, now: datetime) -> bytes:
    return render_pdf(build_report(params, now))


def xlsx_bytes(params: ReportParams, now: datetime) -> bytes:
    out = io.BytesIO()
    write_xlsx(params, now, out)
    return out.getvalue()


def write(params: ReportParams, file_format: str, now: datetime, out: IO[bytes]) -> None:
    """The report in `file_format` (a key of FORMATS) into a binary file, the CSV line by line."""
    if file_format == "csv":
        for text in csv_lines(params, now):
            out.write(text.encode())
    elif file_format == "xlsx":
        write_xlsx(params, now, out)
    else:
        out.write(pdf_bytes(params, now))
