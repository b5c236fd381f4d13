"""The dashboard in a real browser (Debian's Chromium through Playwright, tests/browser.py):
signing in, the inventory forms, "Scan now" with a real Celery worker, acknowledging a real
alert, what a viewer may do, the keyboard and the colours. The servers are POP3 emulators on
loopback, scanned for real.

POPC_SCREENSHOTS=1 also saves the README's screenshots under docs/screenshots/.
"""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from pop3lab.config import EndpointConfig
from popcompliance.alerts.lifecycle import process_pending_changes
from popcompliance.alerts.models import Alert
from popcompliance.compliance.models import FleetSnapshot, Heartbeat, ScanRun
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.compliance.snapshots import take_snapshot
from popcompliance.inventory.models import Policy, Server
from tests.browser import PASSWORD, account, off_the_loop, screenshot
from tests.conftest import SERVICE_NAME, create_lab_policy, lab_server

pytestmark = pytest.mark.slow

SECURE = EndpointConfig()
PLAINTEXT = EndpointConfig(login_type="PlainTextLogin")
# A fleet in mixed states, as the README's overview shows it: name, emulated server, site.
FLEET = [
    ("cas01-london", SECURE, "London"),
    ("cas02-london", PLAINTEXT, "London"),
    ("cas03-paris", EndpointConfig(cert_kind="expired"), "Paris"),
    ("cas04-paris", EndpointConfig(tls_versions=("TLSv1", "TLSv1.3")), "Paris"),
    ("pop-berlin", EndpointConfig(profile="dovecot_like", cert_kind="expiring_soon"), "Berlin"),
]
STATUS_WORDS = re.compile(r"\b(pass|warn|fail|error|skip|not checked|not applicable)\b")
ACK_COMMENT = "Known: switched for a legacy scanner app; reverting in tonight's window."
# Milliseconds a scan queued from the browser may take to show (the worker is already up).
SCAN_SHOWS_WITHIN = 30_000


@pytest.fixture
def policy(transactional_db: None, settings: Any, lab_dns: Any) -> Policy:
    """A policy trusting the lab's CA; in-process scans ask the lab's DNS server."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    return create_lab_policy()


def add_server(name: str, endpoint: Any, policy: Policy, **fields: Any) -> Server:
    return lab_server(
        name, endpoint.address, endpoint.pop3_port, endpoint.pop3s_port, policy, **fields
    )


def scan_and_record(*servers: Server, purpose: str = "scheduled") -> None:
    """Scan the servers for real, as a worker would, and record what was seen."""
    loaded = list(Server.objects.select_related("policy").filter(pk__in=[s.pk for s in servers]))
    reports = off_the_loop(scan_servers, loaded)
    for server in loaded:
        record_report(server.pk, reports[server.pk], purpose=purpose)


@pytest.fixture
def fleet(emulated: Any, policy: Policy) -> list[Server]:
    """FLEET scanned once and its alerts opened, one server never scanned, one paused, a month
    of daily snapshots and live background processes."""
    servers = [add_server(n, emulated.start(c), policy, site=s) for n, c, s in FLEET]
    scan_and_record(*servers)
    now = timezone.now()
    process_pending_changes(now)
    add_server("cas05-berlin", emulated.start(SECURE), policy, site="Berlin")
    add_server("pop-lab", emulated.start(SECURE), policy, site="Lab").pause(now)
    seed_trend(now)
    Heartbeat.beat("beat", now)
    Heartbeat.beat("dispatcher", now, "dispatched 0")
    Heartbeat.beat("worker w1@ops", now)
    # A page signed in before the fleet existed cached an empty "expiring soon" panel for a
    # minute, as production would; the fleet's pages are meant to show the fleet at once.
    cache.clear()
    return list(Server.objects.all())


def seed_trend(now: Any) -> None:
    """Thirty days of history before today's real snapshot: the fleet grew and regressed."""
    for days_ago in range(29, 0, -1):
        grown = 2 + (29 - days_ago) // 7
        failing = 0 if days_ago > 12 else 1 + (days_ago < 5)
        FleetSnapshot.objects.create(
            day=(now - timedelta(days=days_ago)).date(),
            total=grown + 1,
            compliant=grown - failing,
            non_compliant=failing,
            paused=1,
            taken_at=now,
        )
    take_snapshot(now)


# --- Signing in and out ----------------------------------------------------------------------


def test_a_user_logs_in_with_the_form_and_logs_out(new_page: Any) -> None:
    account("viewer", "alice")
    page = new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    log_in(page, "alice", "wrong password")
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    log_in(page, "alice", PASSWORD)
    expect(page.get_by_role("heading", name="Fleet overview")).to_be_visible()
    page.locator("summary", has_text="alice").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to PopCompliance")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def log_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


# --- The inventory ---------------------------------------------------------------------------


def test_an_admin_adds_a_server_pointing_at_the_emulator(
    admin_page: Page, emulated: Any, policy: Policy
) -> None:
    endpoint = emulated.start(SECURE)
    admin_page.get_by_role("link", name="Servers").click()
    admin_page.get_by_role("link", name="Add a server").click()
    fill_server_form(admin_page, "cas07-lab", endpoint)
    admin_page.get_by_role("button", name="Add server").click()
    expect(admin_page.get_by_role("status")).to_contain_text("Added cas07-lab")
    expect(admin_page.get_by_role("row", name=re.compile("cas07-lab"))).to_contain_text(
        endpoint.address
    )
    server = Server.objects.get(name="cas07-lab")
    assert (server.host, server.pop3_port, server.pop3s_port) == (
        endpoint.address,
        endpoint.pop3_port,
        endpoint.pop3s_port,
    )
    assert (server.service_name, server.policy) == (SERVICE_NAME, policy)


def fill_server_form(page: Page, name: str, endpoint: Any) -> None:
    fields = {
        "Name": name,
        "Host": endpoint.address,
        "Service name": SERVICE_NAME,
        "POP3 port": str(endpoint.pop3_port),
        "POP3S port": str(endpoint.pop3s_port),
    }
    for label, value in fields.items():
        field(page, label).fill(value)
    field(page, "Policy").select_option(label="lab")


def field(page: Page, label: str) -> Any:
    """The form field labelled `label` exactly (Django's labels end with a colon)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))


CSV_WITH_ONE_BAD_ROW = (
    "name,host,scan_interval\n"
    "csv-good-1,192.0.2.21,30\n"
    "csv-bad,192.0.2.22,0\n"
    "csv-good-2,192.0.2.23,60\n"
)


def test_an_import_with_one_bad_row_shows_its_line_and_keeps_the_good_rows(
    admin_page: Page,
) -> None:
    admin_page.goto(reverse("inventory:server_list"))
    admin_page.get_by_role("link", name="Import CSV").click()
    admin_page.get_by_label("CSV file").set_input_files(
        {"name": "servers.csv", "mimeType": "text/csv", "buffer": CSV_WITH_ONE_BAD_ROW.encode()}
    )
    admin_page.get_by_role("button", name="Import").click()
    expect(admin_page.locator(".import-result .summary")).to_have_text(
        re.compile(r"Created 2, updated 0,\s+unchanged 0, refused 1\.")
    )
    errors = admin_page.locator("table.errors tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.locator("td")).to_have_text(
        ["3", "scan_interval: must be between 1 and 10080, not 0"]
    )
    admin_page.get_by_role("link", name="See the servers").click()
    expect(admin_page.locator("table.servers tbody tr td:first-child")).to_have_text(
        ["csv-good-1", "csv-good-2"]
    )


# --- Scanning --------------------------------------------------------------------------------


def test_scan_now_shows_the_verdicts_once_a_worker_has_scanned(
    operator_page: Page, celery_processes: Any, emulated: Any, policy: Policy
) -> None:
    server = add_server("cas02-london", emulated.start(PLAINTEXT), policy, site="London")
    celery_processes.worker("w1")
    operator_page.goto(server.get_absolute_url())
    expect(check_row(operator_page, "pop3.plaintext_login")).to_contain_text("not checked")
    with operator_page.expect_navigation(url=re.compile("scanning=")):
        operator_page.get_by_role("button", name="Scan now").click()
    # The page follows the scan and reloads itself with the result.
    result = check_row(operator_page, "pop3.plaintext_login")
    expect(result).to_contain_text("fail", timeout=SCAN_SHOWS_WITHIN)
    expect(operator_page).not_to_have_url(re.compile("scanning="))
    # The first scan of a server changes every check from "not checked": the page says so.
    expect(operator_page.locator("#scan-result")).to_contain_text(re.compile(r"\d+ changes\."))
    expect(check_row(operator_page, "pop3s.available")).to_contain_text("pass")
    expect(operator_page.get_by_role("heading", level=1)).to_contain_text("Non-compliant")
    run = ScanRun.objects.get(server=server)
    assert (run.purpose, run.worker.split("@")[0]) == ("manual", "w1")
    screenshot(operator_page, "server")


def check_row(page: Page, check_id: str) -> Any:
    return page.locator(f"tr[id='check-{check_id}']")


# --- What a viewer may do --------------------------------------------------------------------

# Controls that change something: none of them may show to a viewer.
CHANGING_CONTROLS = [
    ("button", re.compile(r"^(Scan now|Pause|Resume|Acknowledge|Delete)\b")),
    ("link", re.compile(r"^(Edit|Delete|Add a server|Add a policy|Import CSV)\b")),
]


def test_a_viewer_sees_no_control_that_changes_anything(
    viewer_page: Page, emulated: Any, policy: Policy
) -> None:
    alert = open_alert(add_server("cas01-london", emulated.start(SECURE), policy))
    for path in [
        "/",
        alert.server.get_absolute_url(),
        reverse("inventory:server_list"),
        reverse("inventory:policy_list"),
        reverse("dashboard:certificates"),
        reverse("alerts:list"),
        reverse("alerts:detail", args=[alert.pk]),
    ]:
        viewer_page.goto(path)
        for role, name in CHANGING_CONTROLS:
            expect(viewer_page.get_by_role(role, name=name)).to_have_count(0)
        # The only form that posts is the one that logs out.
        expect(viewer_page.locator("form[method=post]")).to_have_count(1)
        expect(viewer_page.locator("form[method=post]")).to_have_attribute(
            "action", reverse("accounts:logout")
        )


def test_a_viewers_direct_posts_are_refused(
    viewer_page: Page, live_server: Any, emulated: Any, policy: Policy
) -> None:
    server = add_server("cas01-london", emulated.start(SECURE), policy)
    alert = open_alert(server)
    for name, args in [
        ("alerts:acknowledge", [alert.pk]),
        ("dashboard:scan_now", [server.pk]),
        ("inventory:server_pause", [server.pk]),
        ("inventory:server_delete", [server.pk]),
        ("inventory:server_add", []),
        ("inventory:server_import", []),
    ]:
        response = post_from(viewer_page, live_server.url + reverse(name, args=args))
        assert response.status == 403, name
        assert "This needs the" in response.text(), name  # the role check, not CSRF
    assert Server.objects.get(pk=server.pk).paused is False
    assert not ScanRun.objects.exists()
    assert Alert.objects.get().acknowledged_at is None


def open_alert(server: Server) -> Alert:
    """An open alert on `server`, made directly: these tests are about who may act on it."""
    return Alert.objects.create(
        server=server,
        check_id="pop3.plaintext_login",
        status="fail",
        summary="the server accepts USER before TLS",
        opened_at=timezone.now(),
    )


def post_from(page: Page, url: str) -> Any:
    """POST from the page's session with a valid CSRF token, as a hand-made form would."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.request.post(url, form={"csrfmiddlewaretoken": token}, max_redirects=0)


# --- Keyboard and colours --------------------------------------------------------------------

FOCUSED = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  return {
    tag: element.tagName.toLowerCase(),
    id: element.id,
    text: (element.innerText || "").trim().slice(0, 40),
    href: element.getAttribute("href") || "",
    visible: (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0)
      || style.boxShadow !== "none",
  };
}"""


def tab_until(page: Page, last_href: str, limit: int = 150) -> list[dict[str, Any]]:
    """Press Tab from the top of the page until the link to `last_href` has focus; what had
    focus after each press."""
    stops: list[dict[str, Any]] = []
    while not stops or stops[-1]["href"] != last_href:
        assert len(stops) < limit, f"Tab never reached {last_href}: {stops}"
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))
    return stops


def hrefs(page: Page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("links => links.map(a => a.getAttribute('href'))")


def positions(stops: list[dict[str, Any]], key: str, wanted: list[str]) -> list[int]:
    """Where each wanted value of `key` first had focus."""
    found = [stop[key] for stop in stops]
    assert set(wanted) <= set(found), f"never reached by Tab: {set(wanted) - set(found)}"
    return [found.index(value) for value in wanted]


def test_the_keyboard_reaches_skip_link_filters_and_matrix_in_order_with_visible_focus(
    viewer_page: Page, fleet: list[Server]
) -> None:
    viewer_page.goto("/")
    controls = viewer_page.locator("form.filters").locator("input, select")
    filter_ids = controls.evaluate_all("elements => elements.map(e => e.id)")
    # The matrix's column headers (sort, filter by check), then each server's page.
    headers = hrefs(viewer_page, "table.matrix thead a")
    servers = hrefs(viewer_page, "table.matrix tbody a")
    assert len(filter_ids) == 8 and len(servers) == len(fleet)
    links = headers + servers
    stops = tab_until(viewer_page, links[-1])
    assert stops[0]["text"] == "Skip to content"
    at_filters, at_links = positions(stops, "id", filter_ids), positions(stops, "href", links)
    assert at_filters == sorted(at_filters) and at_links == sorted(at_links)
    assert at_filters[-1] < at_links[0]
    hidden = [stop for stop in stops if not stop["visible"]]
    assert not hidden, f"focus not visible on: {hidden}"


def test_the_skip_link_moves_focus_to_the_content(viewer_page: Page) -> None:
    viewer_page.keyboard.press("Tab")
    expect(viewer_page.get_by_role("link", name="Skip to content")).to_be_focused()
    viewer_page.keyboard.press("Enter")
    expect(viewer_page.locator("main")).to_be_focused()
    viewer_page.keyboard.press("Tab")
    assert viewer_page.evaluate("document.activeElement.closest('main') !== null")


# Each element's text colour and the colour behind it, as painted: the backgrounds of the
# element and its ancestors are composited on a 1×1 canvas, which also turns whatever colour
# syntax the computed style uses into sRGB.
CONTRAST = """elements => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const paint = colour => {
    context.fillStyle = colour;
    context.fillRect(0, 0, 1, 1);
    return Array.from(context.getImageData(0, 0, 1, 1).data.slice(0, 3));
  };
  const luminance = rgb => {
    const [r, g, b] = rgb.map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return elements.map(element => {
    const chain = [];
    for (let node = element; node; node = node.parentElement) {
      chain.unshift(getComputedStyle(node).backgroundColor);
    }
    paint("#ffffff");
    const background = chain.map(paint).pop();
    const foreground = paint(getComputedStyle(element).color);
    const [light, dark] = [luminance(foreground), luminance(background)].sort((a, b) => b - a);
    return {
      text: element.textContent.trim(),
      foreground, background,
      ratio: Math.round(((light + 0.05) / (dark + 0.05)) * 100) / 100,
    };
  });
}"""


def test_statuses_are_never_shown_by_colour_alone(viewer_page: Page, fleet: list[Server]) -> None:
    viewer_page.goto("/")
    cells = viewer_page.locator("table.matrix td.cell")
    expect(cells.first).to_be_visible()
    for cell in cells.all():
        assert STATUS_WORDS.search(cell.text_content() or ""), cell.inner_html()
        assert STATUS_WORDS.search(cell.get_attribute("title") or ""), cell.inner_html()
    for badge in viewer_page.locator(".badge").all():
        words = badge.evaluate(
            "b => [...b.childNodes].filter(n => !(n.getAttribute && n.getAttribute"
            "('aria-hidden'))).map(n => n.textContent).join('')"
        )
        assert re.search(r"[A-Za-z]{3,}", words), badge.inner_html()


def test_status_badges_and_cells_have_a_contrast_of_at_least_4_5(
    viewer_page: Page, fleet: list[Server]
) -> None:
    viewer_page.goto("/")
    measured = viewer_page.locator(".badge, table.matrix td.cell").evaluate_all(CONTRAST)
    assert len(measured) > 2 * len(fleet)
    low = [m for m in measured if m["ratio"] < 4.5]
    assert not low, f"contrast below 4.5: {low}"
    expiring = viewer_page.get_by_role("region", name="Certificates expiring soon")
    # cas03-paris serves an expired certificate, pop-berlin one that expires within 30 days.
    expect(expiring.get_by_role("listitem")).to_have_count(2)
    expect(expiring.get_by_role("listitem").first).to_contain_text("expired")
    screenshot(viewer_page, "overview")
    viewer_page.evaluate("document.getElementById('matrix-heading').scrollIntoView()")
    screenshot(viewer_page, "overview-matrix")


# --- Content Security Policy -----------------------------------------------------------------


def test_the_pages_pass_the_content_security_policy(admin_page: Page, fleet: list[Server]) -> None:
    violations: list[str] = []
    admin_page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    pages = [
        reverse("dashboard:overview"),
        fleet[0].get_absolute_url(),
        reverse("alerts:list"),
        reverse("inventory:server_list"),
    ]
    for url in pages:
        response = admin_page.goto(url)
        assert response is not None and response.ok, url
        assert "script-src 'self';" in response.headers["content-security-policy"], url
        admin_page.wait_for_load_state("networkidle")
    assert not violations, "\n".join(violations)


def test_the_policy_refuses_an_inline_script(
    browser: Any, live_server: Any, transactional_db: None
) -> None:
    # The canary: the header is enforced and its violations reach the console we listen to.
    context = browser.new_context(base_url=live_server.url)
    try:
        page = context.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text))
        page.goto(reverse("accounts:login"))
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.inlineRan = true'; document.body.append(s); }"
        )
        for _ in range(50):
            if violations:
                break
            page.wait_for_timeout(50)
        assert page.evaluate("window.inlineRan") is None
        assert any("Content Security Policy" in text for text in violations), violations
    finally:
        context.close()


# --- Alerts ----------------------------------------------------------------------------------


@pytest.fixture
def regressed(fixed: Any, policy: Policy) -> Server:
    """A server on the `fixed` address whose regression was confirmed and alerted: scanned
    secure, then plaintext twice, then every pending change (the fleet's too, when a test
    also asks for it) processed into alerts."""
    server = add_server("cas06-rome", fixed_endpoint(fixed), policy, site="Rome")
    steps = [(SECURE, "scheduled"), (PLAINTEXT, "scheduled"), (PLAINTEXT, "confirmation")]
    for config, purpose in steps:
        with fixed.serving(config):
            scan_and_record(server, purpose=purpose)
    process_pending_changes(timezone.now())
    return server


def fixed_endpoint(fixed: Any) -> Any:
    """`fixed`'s address and ports in the shape add_server takes."""
    pop3_port, pop3s_port = fixed.ports
    return SimpleNamespace(address=fixed.address, pop3_port=pop3_port, pop3s_port=pop3s_port)


def test_an_operator_acknowledges_a_regressions_alert_with_a_comment_and_an_end(
    operator_page: Page, fleet: list[Server], regressed: Server
) -> None:
    alert = Alert.objects.get(server=regressed, check_id="pop3.plaintext_login")
    until = timezone.localtime(timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    operator_page.get_by_role("link", name="Alerts", exact=True).click()
    row = operator_page.locator(f"#alert-{alert.pk}")
    expect(row).to_contain_text("Open")
    screenshot(operator_page, "alerts")
    row.get_by_role("button", name=re.compile("^Acknowledge")).click()
    expect(operator_page.locator("#acknowledge")).to_be_in_viewport()
    field(operator_page, "Comment").fill(ACK_COMMENT)
    field(operator_page, "Until").fill(f"{until:%Y-%m-%dT%H:%M}")
    operator_page.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(operator_page.get_by_role("status")).to_contain_text("Acknowledged the alert")
    row = operator_page.locator(f"#alert-{alert.pk}")
    for text in ("Acknowledged", "by operator-user", ACK_COMMENT, f"until {until:%Y-%m-%d %H:%M}"):
        expect(row).to_contain_text(text)
    alert.refresh_from_db()
    assert (alert.state(), alert.ack_comment, alert.ack_until) == (
        "acknowledged",
        ACK_COMMENT,
        until,
    )
    assert alert.acknowledged_by.username == "operator-user"
