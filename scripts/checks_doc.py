"""Write the check table and the remediations of docs/checks.md from the scanner's catalog.

`python -m scripts.checks_doc` rewrites the part of docs/checks.md between the BEGIN and END
markers; tests/test_docs.py fails while that part differs from what this renders, so the page
cannot drift from scanner.CATALOG.
"""

from __future__ import annotations

from pathlib import Path

from scanner import CATALOG, CheckSpec

PAGE = Path(__file__).resolve().parent.parent / "docs" / "checks.md"
BEGIN = "<!-- BEGIN generated from scanner/_catalog.py by `python -m scripts.checks_doc` -->"
END = "<!-- END generated -->"
# The columns read best from the good outcome to the bad, then the two that judge nothing.
COLUMNS = ("pass", "warn", "fail", "error", "skip")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table_row(spec: CheckSpec) -> str:
    meanings = (cell(spec.meanings.get(status, "—")) for status in COLUMNS)
    title = spec.title[:1].upper() + spec.title[1:]
    return f"| `{spec.id}` | {cell(title)} | {cell(spec.question)} | {' | '.join(meanings)} |"


def render() -> str:
    """The generated part, markers included."""
    lines = [
        BEGIN,
        "",
        f"| id | title | question | {' | '.join(COLUMNS)} |",
        "|---|---|---|" + "---|" * len(COLUMNS),
        *(table_row(spec) for spec in CATALOG),
        "",
        "### Remediation",
        "",
        "The text every result that is not `pass` or `skip` carries, for each check:",
        "",
        *(f"- `{spec.id}`: {spec.remediation}" for spec in CATALOG),
        "",
        END,
    ]
    return "\n".join(lines)


def rewritten(page: str) -> str:
    """`page` with its generated part replaced by a fresh rendering."""
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[:start] + render() + page[end:]


if __name__ == "__main__":
    PAGE.write_text(rewritten(PAGE.read_text()))
