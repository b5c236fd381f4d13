"""Write the check table and the remediations of docs/checks.md from the scanner's catalog.

`python -m scripts.checks_doc` rewrites the part of docs/checks.md between the BEGIN and END
markers; tests/test_docs.py fails while that part differs from what this renders, so the page
cannot drift from scanner.CATALOG.
"""

from __future__ import annotations

from pathlib import Path

from scanner import CATALOG, DEFAULT_PROFILE, PROFILES, PROTOCOL_LABEL, CheckSpec, TlsProfile

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


def profile_row(profile: TlsProfile) -> str:
    default = " (default)" if profile.name == DEFAULT_PROFILE else ""
    versions = ", ".join(PROTOCOL_LABEL[version] for version in profile.versions)
    listed = "any suite not forbidden" if profile.recommended is None else "its own list"
    warns = ", ".join(sorted(profile.discouraged)) or "—"
    sizes = f"{profile.min_dh_bits} / {profile.min_rsa_bits} / {profile.min_ec_bits}"
    cells = (
        f"`{profile.name}`{default}",
        profile.title,
        versions,
        ", ".join(sorted(profile.forbidden)),
        f"{warns}; passes {listed}",
        sizes,
        profile.source,
    )
    return "| " + " | ".join(cell(text) for text in cells) + " |"


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
        "### TLS profiles",
        "",
        "`tls.protocols`, `tls.ciphers` and `cert.strength` judge by the policy's profile "
        "(`--profile NAME` on the command line) and name it in their summaries. A suite fails "
        "for a weakness the profile forbids, warns for one it discourages or when it is not on "
        "the profile's list, and passes otherwise.",
        "",
        "| name | title | versions | fails on | warns on | minimum DH / RSA / EC bits | source |",
        "|---|---|---|---|---|---|---|",
        *(profile_row(profile) for profile in PROFILES),
        "",
        END,
    ]
    return "\n".join(lines)


README = PAGE.parent.parent / "README.md"


def render_summary() -> str:
    """The README's short table: each check's id and title, and the profile names."""
    profiles = ", ".join(
        f"`{p.name}`" + (" (default)" if p.name == DEFAULT_PROFILE else "") for p in PROFILES
    )
    lines = [
        BEGIN,
        "",
        "| check | passes when |",
        "|---|---|",
        *(f"| `{spec.id}` | {cell(spec.title)} |" for spec in CATALOG),
        "",
        f"TLS is judged by the policy's profile: {profiles}.",
        "",
        END,
    ]
    return "\n".join(lines)


def rewritten(page: str, rendering: str) -> str:
    """`page` with its generated part replaced by `rendering`."""
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[:start] + rendering + page[end:]


if __name__ == "__main__":
    PAGE.write_text(rewritten(PAGE.read_text(), render()))
    README.write_text(rewritten(README.read_text(), render_summary()))
