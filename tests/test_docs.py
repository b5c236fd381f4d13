"""The README and docs/ against the code: the JSON schema's keys, the check ids, the settings,
and every link between the pages. No network, no database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from scanner import CATALOG, CHECK_IDS, STATUS_RANK
from scanner._report import report_to_dict
from scripts import checks_doc
from tests.test_report import make_report

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
JSON_DOC = DOCS / "json.md"
CHECKS_DOC = DOCS / "checks.md"
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def section(text: str, heading: str) -> str:
    """The text under `heading` up to the next heading of any level."""
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"^#+ ", text[start:], re.M)
    return text[start : start + following.start()] if following else text[start:]


def section_between_markers(text: str) -> str:
    return text[text.index(checks_doc.BEGIN) : text.index(checks_doc.END) + len(checks_doc.END)]


def documented_keys(heading: str) -> list[str]:
    """The first column of the key table under `heading` in docs/json.md, in order."""
    rows = re.findall(r"^\| `([a-z_0-9]+)` \|", section(JSON_DOC.read_text(), heading), re.M)
    assert rows, f"no key table under {heading!r} in docs/json.md"
    return rows


def emitted() -> dict[str, Any]:
    report = report_to_dict(make_report())
    endpoint = report["endpoints"][0]
    return {
        "## Top level: one target": report,
        "## check": report["checks"][0],
        "## dns": report["dns"],
        "## endpoint": endpoint,
        "### pop3": endpoint["pop3"],
        "### stls": endpoint["pop3"]["stls"],
        "### pop3s": endpoint["pop3s"],
        "### tls": endpoint["pop3s"]["tls"],
        "### support": endpoint["pop3s"]["support"],
        "### certificate": endpoint["pop3s"]["tls"]["chain"][0],
        "### revocation": endpoint["revocation"][0],
    }


@pytest.mark.parametrize("heading", list(emitted()))
def test_json_doc_lists_every_key_the_report_writes_in_its_order(heading: str) -> None:
    assert documented_keys(heading) == list(emitted()[heading])


def test_checks_doc_is_what_the_catalog_renders() -> None:
    # When this fails after a catalog change: `python -m scripts.checks_doc` rewrites the page.
    assert section_between_markers(CHECKS_DOC.read_text()) == checks_doc.render()


def test_the_readme_lists_every_check_and_profile_as_the_catalog_renders() -> None:
    readme = (checks_doc.README).read_text()
    assert section_between_markers(readme) == checks_doc.render_summary()


def test_checks_doc_has_one_row_per_check_in_catalog_order_with_its_title_and_question() -> None:
    rows = re.findall(
        r"^\| `([a-z0-9]+\.[a-z_]+)` \| (.+?) \| (.+?) \|", CHECKS_DOC.read_text(), re.M
    )
    assert [row[0] for row in rows] == list(CHECK_IDS)
    for (_, title, question), spec in zip(rows, CATALOG, strict=True):
        assert title.lower() == spec.title.lower()
        assert question == spec.question


def test_the_checks_doc_has_a_column_for_every_status() -> None:
    assert sorted(checks_doc.COLUMNS) == sorted(STATUS_RANK)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_name_no_check_the_catalog_does_not_have(page: Path) -> None:
    families = "|".join(sorted({check_id.split(".")[0] for check_id in CHECK_IDS}))
    named = re.findall(rf"`((?:{families})\.[a-z_]+)`", page.read_text())
    assert sorted(set(named) - set(CHECK_IDS)) == []


def test_configuration_doc_names_every_variable_of_env_example() -> None:
    variables = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (DOCS / "configuration.md").read_text()))
    assert variables
    assert sorted(set(variables) - documented) == []


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_between_the_pages_leads_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # outside the repository; the tests never fetch it
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (linked.suffix == ".md" and anchor not in anchors(linked) | {""}):
            broken.append(target)
    assert broken == []


def test_readme_stays_a_first_hour_read() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_point_at_nothing_outside_the_repository(page: Path) -> None:
    text = page.read_text()
    assert re.findall(r"DESIGN\.md|DESIGN §|/work/|\.\./shared|\bissue \d+\b", text) == []
