"""In a real browser: a viewer downloads compliance reports of the README's fleet (scanned for
real on the emulator) from the Reports page, and the PDF reads back with what failed."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import SCREENSHOTS
from tests.test_browser import fleet, policy  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def download(page: Page, file_format: str, scope: str, tmp_path: Path) -> Path:
    page.get_by_label("Scope").select_option(label=scope)
    page.get_by_label("Format").select_option(file_format)
    with page.expect_download() as started:
        page.get_by_role("button", name="Download report").click()
    saved = tmp_path / started.value.suggested_filename
    started.value.save_as(saved)
    return saved


def pdf_first_page_png(pdf: Path) -> None:
    """The PDF's first page as docs/screenshots/report.png, when POPC_SCREENSHOTS=1."""
    if os.environ.get("POPC_SCREENSHOTS") != "1":
        return
    target = SCREENSHOTS / "report"
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "70",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(target),
        ],
        check=True,
    )


@pytest.mark.usefixtures("fleet")
def test_a_viewer_downloads_the_fleets_report_as_pdf_and_csv(
    viewer_page: Page, tmp_path: Path
) -> None:
    viewer_page.get_by_role("link", name="Reports").click()
    expect(viewer_page.get_by_role("heading", name="Compliance reports")).to_be_visible()
    expect(viewer_page.locator("#monthly")).to_contain_text("No monthly report is sent")

    pdf = download(viewer_page, "pdf", "Every server", tmp_path)
    assert pdf.name.startswith("popcompliance-report-") and pdf.suffix == ".pdf"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True).stdout
    assert b"cas02-london" in text and b"Failing servers" in text
    pdf_first_page_png(pdf)

    saved = download(viewer_page, "csv", "Berlin", tmp_path)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert {row["server"] for row in rows} == {"cas05-berlin", "pop-berlin"}
