"""The dashboard for servers serving several client protocols: the overview's matrix grouped by
protocol and family, the checks of undeclared protocols shown as not applicable, passwords in
the clear on any protocol, and the server page's section per declared protocol. The server
page's facts come from real scans of the emulator serving POP3, IMAP4 and SMTP submission."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

import scanner
from pop3lab.config import EndpointConfig
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.dashboard.catalog import CHECK_GROUPS
from popcompliance.dashboard.compare import compare
from popcompliance.inventory.models import Server
from tests.conftest import lab_server
from tests.test_dashboard_views import ADDRESS, facts_with, make_server, run_with

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("dashboard:overview")
EVERY_PROTOCOL = "pop3,imap,submission"
GROUPS = ["POP3", "IMAP4", "SMTP submission", "Authentication", "TLS", "Certificate", "DNS"]
# Exchange taking IMAP4 passwords before TLS (LoginType PlainTextLogin) and SMTP basic auth
# without BasicAuthRequireTLS; POP3 keeps SecureLogin.
LEAKY_EXCHANGE = EndpointConfig(
    "exchange2016",
    imap_login_type="PlainTextLogin",
    submission_auth=("Tls", "Integrated", "BasicAuth"),
    imap=True,
    imaps=True,
    submission=True,
    submissions=True,
)


def server_with(name: str, protocols: str, checks: dict[str, str] | None = None) -> Server:
    """make_server's scanned server, declaring `protocols`."""
    server = make_server(name, checks=checks)
    Server.objects.filter(pk=server.pk).update(protocols=protocols)
    return server


def thead(page: str) -> str:
    return page[page.index("<thead>") : page.index("</thead>")]


def section(page: str, key: str) -> str:
    """The HTML of the server page's section `key` (a protocol's name, or tls, cert…)."""
    match = re.search(rf'<section id="section-{key}".*?</section>', page, re.DOTALL)
    assert match, f"no section {key}"
    return match.group(0)


# --- The overview's matrix -----------------------------------------------------------------


def test_the_matrix_heads_each_group_once_over_its_checks(viewer):
    server_with("mail01", EVERY_PROTOCOL)
    head = thead(viewer.get(OVERVIEW).content.decode())
    headings = re.findall(
        r'<th scope="colgroup" colspan="(\d+)" class="group-col">([^<]+)</th>', head
    )
    assert [name for _, name in headings] == GROUPS
    sizes = {group.name: len(group.checks) for group in CHECK_GROUPS}
    assert [int(span) for span, _ in headings] == [sizes[name] for name in GROUPS]
    assert sum(sizes.values()) == len(scanner.CATALOG) == 21


def test_each_check_column_reads_its_short_title_and_names_its_id_in_a_tooltip(viewer):
    server_with("mail01", EVERY_PROTOCOL)
    head = thead(viewer.get(OVERVIEW).content.decode())
    columns = re.findall(
        r'<th scope="col" class="check-col"><a [^>]*title="([^"]+)">([^<]+)</a>', head
    )
    assert [short for _, short in columns] == [spec.short for spec in scanner.CATALOG]
    assert [tip.split(":")[0] for tip, _ in columns] == list(scanner.CHECK_IDS)
    assert columns[6] == (
        "imap.starttls: IMAP4 STARTTLS offered and works. Shows the servers not passing it.",
        "STARTTLS",
    )
    # The ids are no longer the headings' text (they were rotated, and at 20 no longer read).
    assert not re.search(r">\s*(" + "|".join(map(re.escape, scanner.CHECK_IDS)) + r")\s*<", head)


def test_a_check_heading_lists_the_servers_not_passing_it(viewer):
    server_with("mail01", EVERY_PROTOCOL, {"imap.starttls": "fail"})
    server_with("mail02", EVERY_PROTOCOL)
    page = viewer.get(OVERVIEW).content.decode()
    link = re.search(r'<a href="([^"]+)" title="imap.starttls:', page).group(1)
    rows = viewer.get(OVERVIEW + link.replace("&amp;", "&")).context["rows"]
    assert [row.server.name for row in rows] == ["mail01"]


def test_checks_of_a_protocol_the_server_does_not_declare_are_not_applicable(viewer):
    # A stale IMAP4 failure from when the server still declared IMAP4 shows no colour.
    server_with("pop-only", "pop3", {"imap.plaintext_login": "fail"})
    server_with("all-three", EVERY_PROTOCOL)
    response = viewer.get(OVERVIEW)
    rows = {row.server.name: row for row in response.context["rows"]}
    undeclared = [cell.check_id for cell in rows["pop-only"].cells if not cell.declared]
    assert undeclared == [
        spec.id for spec in scanner.CATALOG if spec.protocol in ("imap", "submission")
    ]
    assert all(cell.declared for cell in rows["all-three"].cells)
    page = response.content.decode()
    assert page.count('class="cell cell-na"') == 6
    assert (
        '<td class="cell cell-na" title="imap.plaintext_login: not applicable, IMAP4 is not '
        'declared for this server"><span aria-hidden="true">—</span>'
        '<span class="visually-hidden">not applicable</span></td>'
    ) in page
    assert 'title="imap.plaintext_login: fail"' not in page


def test_the_matrix_says_on_which_protocols_a_server_takes_passwords_in_the_clear(viewer):
    server_with(
        "leaky",
        EVERY_PROTOCOL,
        {"imap.plaintext_login": "fail", "submission.plaintext_auth": "fail"},
    )
    server_with("stale", "pop3", {"imap.plaintext_login": "fail"})
    server_with("tight", EVERY_PROTOCOL, {"pop3.plaintext_login": "error"})
    response = viewer.get(OVERVIEW)
    leaks = {row.server.name: row.leaks for row in response.context["rows"]}
    assert leaks == {"leaky": ["IMAP4", "SMTP submission"], "stale": [], "tight": []}
    page = response.content.decode()
    assert page.count("password in the clear on") == 1
    assert "password in the clear on IMAP4, SMTP submission</span>" in page


# --- Accepts passwords in the clear, on any protocol ---------------------------------------


def test_the_cleartext_tile_counts_servers_once_and_says_how_many_per_protocol(viewer):
    server_with("pop", EVERY_PROTOCOL, {"pop3.plaintext_login": "fail"})
    server_with("imap", EVERY_PROTOCOL, {"imap.plaintext_login": "fail"})
    server_with(
        "both",
        EVERY_PROTOCOL,
        {"imap.plaintext_login": "fail", "submission.plaintext_auth": "fail"},
    )
    server_with("unsure", EVERY_PROTOCOL, {"submission.plaintext_auth": "error"})
    response = viewer.get(OVERVIEW)
    counts = response.context["cleartext"]
    assert counts.total == 3
    assert counts.by_protocol == [
        ("POP3", "pop3.plaintext_login", 1),
        ("IMAP4", "imap.plaintext_login", 2),
        ("SMTP submission", "submission.plaintext_auth", 1),
    ]
    assert "POP3 1 · IMAP4 2 · SMTP submission 1" in response.content.decode()


@pytest.mark.parametrize("check_id", scanner.CLEARTEXT_PASSWORD_CHECK_IDS)
def test_the_cleartext_view_lists_servers_leaking_on_any_protocol(viewer, check_id):
    server_with("leaky", EVERY_PROTOCOL, {check_id: "fail"})
    server_with("unsure", EVERY_PROTOCOL, {check_id: "error"})
    server_with("fine", EVERY_PROTOCOL)
    rows = viewer.get(OVERVIEW + "?exposure=cleartext").context["rows"]
    assert [row.server.name for row in rows] == ["leaky"]


def test_the_exposure_filter_says_it_covers_every_protocol(viewer):
    server_with("mail01", EVERY_PROTOCOL)
    page = viewer.get(OVERVIEW).content.decode()
    assert (
        '<option value="cleartext">Accepts passwords in the clear on any protocol</option>' in page
    )
    # The check filter groups its checks under the same headings as the matrix.
    assert '<optgroup label="IMAP4">' in page
    assert '<option value="imap.starttls">STARTTLS (imap.starttls)</option>' in page


def test_the_wider_matrix_runs_as_many_queries_whatever_the_protocols(
    viewer, django_assert_num_queries
):
    # The same 18 as tests/test_dashboard_views.py: which checks apply is read from each
    # server's own row, and the tile's counts are one query however many protocols.
    for i, protocols in enumerate(("pop3", EVERY_PROTOCOL, "imap,submission")):
        server_with(f"a{i}", protocols, {"imap.plaintext_login": "fail"})
    with django_assert_num_queries(18):
        viewer.get(OVERVIEW)
    for i in range(9):
        server_with(f"b{i}", ("pop3", EVERY_PROTOCOL, "submission")[i % 3])
    cache.clear()
    with django_assert_num_queries(18):
        viewer.get(OVERVIEW)


# --- The server page -----------------------------------------------------------------------


def scanned_on_every_door(name: str, endpoint: Any) -> Server:
    """A server for a started emulated endpoint declaring the three protocols on its six
    ports, scanned for real and recorded as a worker does."""
    ports = {
        f"{door}_port": endpoint.port(door)
        for door in ("imap", "imaps", "submission", "submissions")
    }
    server = lab_server(
        name,
        endpoint.address,
        endpoint.pop3_port,
        endpoint.pop3s_port,
        protocols=EVERY_PROTOCOL,
        **ports,
    )
    report = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    record_report(server.pk, report[server.pk], purpose="manual")
    return server


@pytest.fixture
def three_protocols(emulated, lab_dns, settings) -> Server:
    """LEAKY_EXCHANGE scanned for real on its six ports and recorded as a worker does."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    return scanned_on_every_door("exchange03", emulated.start(LEAKY_EXCHANGE))


def test_the_server_page_has_a_section_per_declared_protocol_then_the_shared_ones(
    viewer, three_protocols
):
    page = viewer.get(three_protocols.get_absolute_url()).content.decode()
    headings = re.findall(r'<section id="section-(\w+)" class="check-section"', page)
    assert headings == ["pop3", "imap", "submission", "auth", "tls", "cert", "dns"]
    for group, key in zip(CHECK_GROUPS, headings, strict=True):
        rows = re.findall(r'<tr id="check-([a-z0-9_.]+)">', section(page, key))
        assert rows == [spec.id for spec in group.checks]
    assert "Not declared for this server" not in page


def test_each_protocol_section_shows_what_that_protocol_said(viewer, three_protocols):
    page = viewer.get(three_protocols.get_absolute_url()).content.decode()
    imap, submission = section(page, "imap"), section(page, "submission")
    for fact in [
        "* OK The Microsoft Exchange IMAP4 service is ready.",  # greeting, on 143 and 993
        "IMAP4, IMAP4rev1, AUTH=PLAIN, AUTH=NTLM, AUTH=GSSAPI, STARTTLS",  # before STARTTLS
        'sent <span class="mono">AUTHENTICATE PLAIN</span>, got <span class="mono break">+ </span>',
        "accepted (confirmed)",  # a password would be read before TLS
        "OK Begin TLS negotiation now.",  # STARTTLS's reply
        "PlainTextLogin",  # IMAP4's own LoginType
        "TLS 1.2: <strong>accepted</strong>",
    ]:
        assert fact in imap, fact
    for fact in [
        "AUTH GSSAPI NTLM LOGIN",  # EHLO after STARTTLS
        'sent <span class="mono">AUTH LOGIN</span>, got <span class="mono break">334 VXNlcm5hbWU6',
        "221 2.0.0 Service closing transmission channel",
        "SMTP submission over TLS port",
    ]:
        assert fact in submission, fact
    assert "refused (confirmed)" in section(page, "pop3")
    assert "AUTHENTICATE" not in section(page, "pop3")


def test_the_shared_sections_show_ntlm_names_every_tls_entry_point_and_the_chain(
    viewer, three_protocols
):
    page = viewer.get(three_protocols.get_absolute_url()).content.decode()
    auth = section(page, "auth")
    # POP3's SecureLogin hides NTLM before TLS; IMAP4 and SMTP submission offer it.
    disclosing = re.findall(r'aria-label="Names the NTLM challenge on ([^"]+) disclosed"', auth)
    assert disclosing == ["IMAP4", "SMTP submission"]
    assert 'DNS computer: <span class="mono">exch01.contoso.local</span>' in auth
    tls = section(page, "tls")
    entries = re.findall(r'<th scope="row">([^<]+)</th>', tls)
    assert [entry.split(" port")[0] for entry in entries] == [
        "POP3",
        "POP3",
        "IMAP4",
        "IMAP4",
        "SMTP submission",
        "SMTP submission",
    ]
    assert entries[3].endswith("after STARTTLS")
    assert "IMAP4 port" in section(page, "cert")  # where the chain is served


def test_the_server_page_runs_as_many_queries_for_three_protocols(
    viewer, three_protocols, django_assert_num_queries
):
    # As for a POP3 server (tests/test_dashboard_views.py): the facts are one stored JSON.
    with django_assert_num_queries(14):
        viewer.get(three_protocols.get_absolute_url())


def test_a_pop3_scan_stored_before_imap_and_submission_still_renders(viewer):
    server = server_with("mail01", "pop3")
    run_with(server, 5, facts_with("pass", "SecureLogin", False))
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert re.findall(r'<section id="section-(\w+)" class="check-section"', page) == [
        "pop3",
        "auth",
        "tls",
        "cert",
        "dns",
    ]
    assert "+OK hi" in section(page, "pop3")
    assert (
        "Not declared for this server, so neither probed nor judged: IMAP4, SMTP submission."
        in page
    )
    assert "No declared protocol offered NTLM before TLS here." in section(page, "auth")


def test_a_protocol_declared_after_the_stored_scan_says_it_was_not_probed_yet(viewer):
    server = server_with("mail01", EVERY_PROTOCOL)
    run_with(server, 5, facts_with("pass", "SecureLogin", False))
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert "The stored scan did not probe IMAP4 here" in section(page, "imap")
    assert "+OK hi" in section(page, "pop3")


def test_the_per_address_matrix_groups_only_the_checks_that_apply(viewer):
    server = server_with("mail01", "pop3,submission")
    response = viewer.get(server.get_absolute_url())
    names = [name for name, _ in response.context["address_groups"]]
    assert names == ["POP3", "SMTP submission", "Authentication", "TLS", "Certificate"]
    [row] = response.context["address_rows"]
    assert not any(check_id.startswith("imap") for check_id, _ in row.cells)
    assert (
        'title="submission.starttls: SMTP submission STARTTLS offered and works">STARTTLS</a>'
        in (response.content.decode())
    )


def test_compare_shows_a_change_on_imap4(viewer):
    server = server_with("mail01", EVERY_PROTOCOL)
    before, after = (
        facts_with("pass", "SecureLogin", False),
        facts_with("pass", "SecureLogin", False),
    )
    for facts, verdict in ((before, "refused"), (after, "accepted")):
        facts["endpoints"][0]["imap"] = {"port": 143, "outcome": "ok", "plaintext_login": verdict}
    comparison = compare(run_with(server, 60, before), run_with(server, 5, after))
    assert comparison.facts == [(f"{ADDRESS} IMAP4 plaintext login", "refused", "accepted")]
