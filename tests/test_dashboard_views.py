"""The dashboard's pages: overview, server page (history, comparison, scan now), certificates.
The cast: an operator, a viewer, and an anonymous visitor. Rows are made directly, except for
the server page's facts, which come from a real scan of the emulator."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import scanner
from pop3lab.config import EndpointConfig
from popcompliance.accounts.roles import set_role
from popcompliance.compliance import tasks
from popcompliance.compliance.models import (
    Certificate,
    CertificateSighting,
    Change,
    CheckState,
    FleetSnapshot,
    Heartbeat,
    ScanRun,
)
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.dashboard import views
from popcompliance.dashboard.compare import compare
from popcompliance.dashboard.queries import EXPIRING_PANEL_SECONDS
from popcompliance.dashboard.templatetags.dashboard import countdown
from popcompliance.inventory.models import Policy, Server, Tag
from popcompliance.ops import heartbeats as recording
from popcompliance.ops.heartbeats import BEAT_STALE_AFTER, WORKERS_STALE_AFTER, liveness
from tests.conftest import SERVICE_NAME, lab_policy
from tests.people import client_as
from tests.services import RedisServer, queued_tasks

pytestmark = pytest.mark.django_db

ADDRESS = "192.0.2.10"


def make_server(
    name: str,
    status: str = "compliant",
    *,
    site: str = "",
    tags: tuple[str, ...] = (),
    checks: dict[str, str] | None = None,
) -> Server:
    """A scanned server whose checks all pass except those named in `checks`."""
    now = timezone.now()
    server = Server.objects.create(
        name=name, host=f"{name}.example.com", site=site, status=status, last_scan_at=now
    )
    server.tags.set([Tag.objects.get_or_create(name=tag)[0] for tag in tags])
    CheckState.objects.bulk_create(
        CheckState(
            server=server,
            address="" if check_id in scanner.TARGET_CHECK_IDS else ADDRESS,
            check_id=check_id,
            status=(checks or {}).get(check_id, "pass"),
            summary=f"{check_id} on {name}",
            remediation=f"fix {check_id}",
            since=now,
        )
        for check_id in scanner.CHECK_IDS
    )
    return server


def make_certificate(name: str, days_left: int, *servers: Server) -> Certificate:
    now = timezone.now()
    certificate = Certificate.objects.create(
        fingerprint_sha256=name.encode().hex().ljust(64, "0")[:64],
        subject=f"CN={name}",
        issuer="CN=Test CA",
        common_name=name,
        dns_names=[name],
        serial="01",
        not_before=now - timedelta(days=30),
        # An hour's margin, so `days_left` whole days is what the page counts.
        not_after=now + timedelta(days=days_left, hours=1 if days_left >= 0 else -1),
        key_type="RSA",
        key_bits=2048,
        self_signed=False,
        pem="-----BEGIN CERTIFICATE-----",
        first_seen_at=now,
        last_seen_at=now,
    )
    for server in servers:
        CertificateSighting.objects.create(
            certificate=certificate,
            server=server,
            address=ADDRESS,
            port=995,
            first_seen_at=now,
            last_seen_at=now,
        )
    return certificate


def names(response) -> list[str]:
    return [row.server.name for row in response.context["rows"]]


# --- Access --------------------------------------------------------------------------------

PAGES = [
    ("dashboard:overview", False),
    ("dashboard:server", True),
    ("dashboard:server_history", True),
    ("dashboard:server_compare", True),
    ("dashboard:scan_status", True),
    ("dashboard:certificates", False),
]


@pytest.mark.parametrize(("name", "per_server"), PAGES)
def test_every_page_sends_anonymous_visitors_to_the_login_page(name, per_server):
    server = make_server("mail01")
    url = reverse(name, args=[server.pk] if per_server else [])
    response = client_as(None).get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


@pytest.mark.parametrize(("name", "per_server"), PAGES)
def test_a_viewer_reads_every_page(viewer, name, per_server):
    server = make_server("mail01")
    url = reverse(name, args=[server.pk] if per_server else [])
    assert viewer.get(url).status_code == 200


def test_the_certificate_page_shows_where_it_is_served(viewer):
    certificate = make_certificate("mail.example.com", 40, make_server("mail01"))
    response = viewer.get(certificate.get_absolute_url())
    assert response.status_code == 200
    assert "mail01" in response.content.decode()


def test_a_server_links_to_its_dashboard_page():
    server = make_server("mail01")
    assert server.get_absolute_url() == reverse("dashboard:server", args=[server.pk])


def test_an_unknown_server_is_404(viewer):
    assert viewer.get(reverse("dashboard:server", args=[999999])).status_code == 404


# --- Scan now ------------------------------------------------------------------------------


@pytest.fixture
def broker(transactional_db: None, redis_broker: RedisServer) -> RedisServer:
    """The tests' own Redis as the broker; with real commits, "scan now" sends at once."""
    return redis_broker


def test_an_operator_queues_a_manual_scan_and_follows_its_progress(operator, broker):
    server = make_server("mail01")
    run = ScanRun.objects.create(
        server=server, purpose="scheduled", started_at=timezone.now(), finished_at=timezone.now()
    )
    response = operator.post(reverse("dashboard:scan_now", args=[server.pk]))
    assert queued_tasks(broker) == [("compliance.scan_server", [server.pk], {"purpose": "manual"})]
    assert response.status_code == 302
    assert response.url == f"{server.get_absolute_url()}?scanning={run.pk}#scan-progress"
    page = operator.get(response.url).content.decode()
    assert 'id="scan-progress"' in page and "js/server.js" in page


def test_scan_now_while_the_queue_is_down_says_so_on_the_page(operator, broker):
    server = make_server("mail01")
    broker.stop()
    try:
        response = operator.post(reverse("dashboard:scan_now", args=[server.pk]), follow=True)
    finally:
        broker.start()
    assert response.redirect_chain == [(server.get_absolute_url(), 302)]
    assert "Could not queue the scan: the task queue is unreachable." in response.content.decode()
    assert queued_tasks(broker) == []


def test_scan_now_while_a_scan_is_queued_joins_it_and_says_so(operator, broker):
    server = make_server("mail01")
    operator.post(reverse("dashboard:scan_now", args=[server.pk]))
    response = operator.post(reverse("dashboard:scan_now", args=[server.pk]), follow=True)
    assert "already queued or running; your request joins it" in response.content.decode()
    assert queued_tasks(broker) == [("compliance.scan_server", [server.pk], {"purpose": "manual"})]


def test_scan_now_while_the_dispatcher_has_claimed_the_server_joins_that_scan(operator, broker):
    server = make_server("mail01")  # due now, as every new server is
    assert tasks.dispatch_due_scans() == 1
    operator.post(reverse("dashboard:scan_now", args=[server.pk]))
    assert [kwargs.get("purpose") for _, _, kwargs in queued_tasks(broker)] == [None]


def test_scan_now_past_the_rate_limit_says_so_and_queues_nothing(operator, broker, settings):
    settings.POPC_SCAN_REQUESTS_PER_MINUTE = 2
    servers = [make_server(f"mail0{i}") for i in range(3)]
    for server in servers[:2]:
        operator.post(reverse("dashboard:scan_now", args=[server.pk]))
    response = operator.post(reverse("dashboard:scan_now", args=[servers[2].pk]), follow=True)
    assert response.redirect_chain == [(servers[2].get_absolute_url(), 302)]
    page = response.content.decode()
    assert "Too many scan requests: at most 2 a minute. Wait a minute and try again." in page
    assert sorted(args[0] for _, args, _ in queued_tasks(broker)) == [s.pk for s in servers[:2]]


def test_a_viewer_cannot_scan_now(viewer, broker):
    server = make_server("mail01")
    assert viewer.post(reverse("dashboard:scan_now", args=[server.pk])).status_code == 403
    assert queued_tasks(broker) == []


def test_scan_now_refuses_get(operator, broker):
    server = make_server("mail01")
    assert operator.get(reverse("dashboard:scan_now", args=[server.pk])).status_code == 405
    assert queued_tasks(broker) == []


def test_a_viewer_sees_no_scan_now_button(viewer, operator):
    server = make_server("mail01")
    assert "Scan now" not in viewer.get(server.get_absolute_url()).content.decode()
    assert "Scan now" in operator.get(server.get_absolute_url()).content.decode()


def test_scan_now_needs_the_csrf_token(broker):
    server = make_server("mail01")
    client = Client(enforce_csrf_checks=True)
    user = User.objects.create_user("operator-user", password="x")
    set_role(user, "operator")
    client.force_login(user)
    assert client.post(reverse("dashboard:scan_now", args=[server.pk])).status_code == 403
    assert queued_tasks(broker) == []


def test_scan_status_reports_done_once_a_newer_scan_is_stored(viewer):
    server = make_server("mail01")
    url = reverse("dashboard:scan_status", args=[server.pk]) + "?after=0"
    assert viewer.get(url).json() == {"done": False}
    now = timezone.now()
    run = ScanRun.objects.create(
        server=server, purpose="manual", started_at=now, finished_at=now, compliant=True
    )
    result = viewer.get(url).json()
    assert (result["done"], result["run"]["id"], result["run"]["compliant"]) == (True, run.pk, True)
    assert viewer.get(url.replace("after=0", f"after={run.pk}")).json() == {"done": False}


# --- Overview ------------------------------------------------------------------------------


def test_the_overview_counts_servers_by_status(viewer):
    make_server("a", "compliant")
    make_server("b", "compliant")
    make_server("c", "non_compliant", checks={"cert.name": "fail"})
    Server.objects.create(name="d", host="d.example.com")
    counts = viewer.get(reverse("dashboard:overview")).context["counts"]
    assert counts == {
        "non_compliant": 1,
        "unknown": 0,
        "excepted": 0,
        "new": 1,
        "compliant": 2,
        "paused": 0,
    }


def test_the_matrix_shows_each_checks_worst_status_as_a_symbol_and_a_word(viewer):
    make_server("mail01", "non_compliant", checks={"cert.name": "fail", "dns.srv": "warn"})
    response = viewer.get(reverse("dashboard:overview"))
    cells = {cell.check_id: cell.status for cell in response.context["rows"][0].cells}
    assert (cells["cert.name"], cells["dns.srv"], cells["pop3.stls"]) == ("fail", "warn", "pass")
    page = response.content.decode()
    assert 'title="cert.name: fail"' in page
    assert '<span aria-hidden="true">✗</span><span class="visually-hidden">fail</span>' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("site=paris", ["mail01", "mail02"]),
        ("tag=prod", ["mail02", "mail03"]),
        ("status=non_compliant", ["mail02"]),
        ("q=MAIL03", ["mail03"]),
        ("check=cert.name&result=fail", ["mail02"]),
        ("check=dns.srv&result=problem", ["mail03"]),
        ("result=warn", ["mail03"]),
        ("site=paris&tag=prod", ["mail02"]),
    ],
)
def test_the_overview_filters_servers(viewer, query, expected):
    make_server("mail01", site="paris")
    make_server(
        "mail02", "non_compliant", site="paris", tags=("prod",), checks={"cert.name": "fail"}
    )
    make_server("mail03", site="berlin", tags=("prod", "eu"), checks={"dns.srv": "warn"})
    assert names(viewer.get(f"{reverse('dashboard:overview')}?{query}")) == expected


def test_the_overview_sorts_worst_status_first(viewer):
    make_server("a-good", "compliant")
    make_server("b-bad", "non_compliant")
    make_server("c-unknown", "unknown")
    assert names(viewer.get(reverse("dashboard:overview") + "?sort=status")) == [
        "b-bad",
        "c-unknown",
        "a-good",
    ]
    assert names(viewer.get(reverse("dashboard:overview") + "?sort=-name"))[0] == "c-unknown"


def test_the_overview_paginates(viewer, monkeypatch):
    monkeypatch.setattr(views, "SERVERS_PER_PAGE", 2)
    for name in ("a", "b", "c"):
        make_server(name)
    assert names(viewer.get(reverse("dashboard:overview") + "?page=2")) == ["c"]


def test_a_stale_filter_shows_the_whole_fleet(viewer):
    make_server("mail01")
    assert names(viewer.get(reverse("dashboard:overview") + "?site=gone")) == ["mail01"]


# --- Background processes ------------------------------------------------------------------

SCHEDULER_BANNER = "The scheduler is not running."
WORKERS_BANNER = "No worker is taking tasks."


def heartbeats(now, beat_minutes, worker_minutes) -> None:
    """Beat's and one worker's heartbeat so many minutes before `now` (None: never)."""
    if beat_minutes is not None:
        Heartbeat.beat("beat", now - timedelta(minutes=beat_minutes))
    if worker_minutes is not None:
        Heartbeat.beat("worker w1@ops", now - timedelta(minutes=worker_minutes))


def liveness_badges(page: str) -> list[tuple[str, str]]:
    """(colour, text) of each badge in the "Background processes" panel: beat's, workers'."""
    panel = page[page.index('id="liveness-heading"') :].split("</section>")[0]
    badge = r'class="badge badge-(\w+)">(?:<span aria-hidden="true">.</span> )?([^<]+)<'
    return re.findall(badge, panel)


# Minutes since beat's heartbeat and the newest worker's (None: never), and what is judged
# stopped: (beat, workers).
LIVENESS = [
    pytest.param(1, 1, (False, False), id="both-fresh"),
    # Beat sends a task a minute: a worker silent for longer takes none.
    pytest.param(1, 10, (False, True), id="beat-fresh-worker-stale"),
    pytest.param(1, None, (False, True), id="beat-fresh-worker-never"),
    # Without beat, an idle worker is as silent as a dead one: workers are not judged.
    pytest.param(10, 1, (True, False), id="beat-dead-worker-fresh"),
    pytest.param(10, 10, (True, False), id="beat-dead-worker-stale"),
    pytest.param(None, None, (True, False), id="nothing-ever"),
]


@pytest.mark.parametrize(("beat", "worker", "stopped"), LIVENESS)
def test_the_heartbeats_tell_which_background_process_stopped(beat, worker, stopped):
    now = timezone.now()
    heartbeats(now, beat, worker)
    judged = liveness(now)
    assert (judged.beat_dead, judged.workers_dead) == stopped


BANNERS = {
    (False, False): ([], [("green", "running"), ("green", "taking tasks")]),
    (False, True): ([WORKERS_BANNER], [("green", "running"), ("red", "not taking tasks")]),
    (True, False): (
        [SCHEDULER_BANNER],
        [("red", "stopped"), ("grey", "not judged while beat is stopped")],
    ),
}


@pytest.mark.parametrize(("beat", "worker", "stopped"), LIVENESS)
def test_the_overview_names_what_stopped_in_a_banner_and_badges(viewer, beat, worker, stopped):
    heartbeats(timezone.now(), beat, worker)
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    banners, badges = BANNERS[stopped]
    assert [text for text in (SCHEDULER_BANNER, WORKERS_BANNER) if text in page] == banners
    assert liveness_badges(page) == badges


@pytest.mark.parametrize(
    ("age", "workers_dead"),
    [
        pytest.param(WORKERS_STALE_AFTER, False, id="at"),
        pytest.param(WORKERS_STALE_AFTER + timedelta(seconds=1), True, id="after"),
    ],
)
def test_workers_are_judged_stopped_after_three_silent_minutes(age, workers_dead):
    now = timezone.now()
    Heartbeat.beat("beat", now)
    Heartbeat.beat("worker w1@ops", now - age)
    Heartbeat.beat("worker w2@ops", now - age - timedelta(hours=1))
    assert liveness(now).workers_dead is workers_dead


@pytest.mark.parametrize(("in_beat", "beats"), [(True, True), (False, False)])
def test_sending_a_task_refreshes_beats_heartbeat_only_in_beat(
    transactional_db, monkeypatch, in_beat, beats
):
    # What keeps beat's heartbeat fresh after beat_init: each task it sends. Web and workers
    # send tasks too ("scan now", deliver), and must not pass for beat. Outside a transaction,
    # as in beat, where the heartbeat recycles its connection first.
    monkeypatch.setattr(recording, "RECORDER", recording.Recorder())
    recording.RECORDER.in_beat = in_beat
    Heartbeat.beat("beat", timezone.now() - timedelta(hours=1))
    recording._task_sent(sender="alerts.deliver")
    fresh = timezone.now() - Heartbeat.objects.get(name="beat").last_seen_at < timedelta(minutes=1)
    assert fresh is beats


def test_beat_records_its_own_heartbeat_and_the_overview_misses_the_workers(
    celery_processes, viewer
):
    # Beat alone, no worker: its heartbeat shows it runs, and nothing takes its tasks.
    beat = celery_processes.beat(POPC_DISPATCH_EVERY=1)
    beat.wait_for_log(r"Sending due task")
    deadline = time.monotonic() + 20
    while not Heartbeat.objects.filter(name="beat").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(Heartbeat.objects.values_list("name", flat=True)) == ["beat"]
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert WORKERS_BANNER in page and SCHEDULER_BANNER not in page
    assert "No worker has ever reported" in page


@pytest.mark.parametrize(
    ("age", "dead"),
    [
        (BEAT_STALE_AFTER - timedelta(seconds=1), False),
        (BEAT_STALE_AFTER, False),
        (BEAT_STALE_AFTER + timedelta(seconds=1), True),
    ],
)
def test_beat_counts_as_dead_just_after_three_missed_rounds(age, dead):
    now = timezone.now()
    Heartbeat.beat("beat", now - age)
    assert liveness(now).beat_dead is dead


def test_the_overview_shows_workers_last_heartbeats_and_the_last_dispatch(viewer):
    Heartbeat.beat("worker celery@host1", timezone.now())
    Heartbeat.beat("dispatcher", timezone.now() - timedelta(minutes=2), "dispatched 7")
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert "worker celery@host1" in page
    assert "last dispatch 2\xa0minutes ago (dispatched 7)" in page


def test_the_trend_covers_90_days_of_snapshots(viewer):
    today = timezone.now().date()
    for age in (0, 45, 89, 120):
        FleetSnapshot.objects.create(
            day=today - timedelta(days=age),
            total=10,
            compliant=10 - age // 30,
            taken_at=timezone.now(),
        )
    response = viewer.get(reverse("dashboard:overview"))
    trend = response.context["trend"]
    assert [row["day"] for row in trend] == [
        (today - timedelta(days=age)).isoformat() for age in (89, 45, 0)
    ]
    page = response.content.decode()
    assert 'id="trend-data"' in page and "chart.js-4.6.1/chart.umd.min.js" in page


def test_expiring_certificates_are_the_ones_still_served_soonest_first(viewer):
    server = make_server("mail01")
    make_certificate("later.example.com", 20, server)
    make_certificate("soon.example.com", 3, server)
    make_certificate("fine.example.com", 200, server)
    make_certificate("replaced.example.com", 1)
    expiring = viewer.get(reverse("dashboard:overview")).context["expiring"]
    assert [c.common_name for c in expiring] == ["soon.example.com", "later.example.com"]


def test_the_expiring_panel_is_cached_for_a_minute(viewer, django_assert_num_queries):
    server = make_server("mail01")
    make_certificate("soon.example.com", 3, server)
    viewer.get(reverse("dashboard:overview"))
    make_certificate("sooner.example.com", 2, server)
    # 18 queries without the caches (test_the_overview_runs_a_constant_number_of_queries).
    with django_assert_num_queries(16):
        cached = viewer.get(reverse("dashboard:overview")).context["expiring"]
    assert [c.common_name for c in cached] == ["soon.example.com"]
    with time_machine.travel(timezone.now() + timedelta(seconds=EXPIRING_PANEL_SECONDS + 1)):
        fresh = viewer.get(reverse("dashboard:overview")).context["expiring"]
    assert [c.common_name for c in fresh] == ["sooner.example.com", "soon.example.com"]


def test_the_overview_runs_a_constant_number_of_queries(viewer, django_assert_num_queries):
    # Session, user, role, tags, sites, counts, cleartext count, page count, servers, their
    # tags, matrix, the waivers in force, trend, open alerts (with their count, in one query),
    # maintenance windows, expiring certificates, heartbeats, the outbox's health.
    for i in range(3):
        make_certificate(f"c{i}.example.com", 10, make_server(f"a{i}", tags=("prod",)))
    with django_assert_num_queries(18):
        viewer.get(reverse("dashboard:overview") + "?tag=prod&check=cert.name&result=pass")
    for i in range(8):
        make_certificate(f"d{i}.example.com", 10, make_server(f"b{i}", tags=("prod", "eu")))
    cache.clear()  # the expiring-certificates panel and the email health are cached
    with django_assert_num_queries(18):
        viewer.get(reverse("dashboard:overview") + "?tag=prod&check=cert.name&result=pass")


# --- Server page ---------------------------------------------------------------------------


@pytest.fixture
def scanned(emulated, lab_dns, settings) -> Server:
    """A server scanned for real (the emulator, Exchange 2016 profile) through the workers'
    record path."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    endpoint = emulated.start(EndpointConfig())
    server = Server.objects.create(
        name="exchange01",
        host=endpoint.address,
        service_name=SERVICE_NAME,
        pop3_port=endpoint.pop3_port,
        pop3s_port=endpoint.pop3s_port,
        policy=Policy.objects.create(name="lab", **lab_policy().__dict__),
    )
    report = scan_servers([Server.objects.select_related("policy").get(pk=server.pk)])
    record_report(server.pk, report[server.pk], purpose="manual")
    return server


def test_the_server_page_shows_the_facts_of_a_real_scan(viewer, scanned):
    page = viewer.get(scanned.get_absolute_url()).content.decode()
    endpoint = scanned.addresses.get()
    for fact in [
        "+OK The Microsoft Exchange POP3 service is ready.",  # banner
        "TOP, UIDL, STLS",  # CAPA before STLS
        "SASL NTLM GSSAPI PLAIN",  # CAPA after STLS
        "SecureLogin",  # inferred LoginType
        "TLS_AES_256_GCM_SHA384",  # negotiated cipher
        "TLS 1.2: <strong>accepted</strong>",
        "TLS 1.1: <strong>refused</strong>",
        "SSLv3: <strong>refused</strong>",  # tested at the protocol level, not "untested"
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",  # an accepted suite
        "DNS:mail.example.test",  # SANs
        "CN=PopCompliance Test Intermediate CA",  # issuer and chain
        "Published: no OCSP responder, no CRL distribution point",  # revocation
        endpoint.address,
    ]:
        assert fact in page, fact


def test_the_server_page_lists_every_check_with_its_summary_and_remediation(viewer):
    server = make_server("mail01", "non_compliant", checks={"pop3.plaintext_login": "fail"})
    response = viewer.get(server.get_absolute_url())
    rows = response.context["check_rows"]
    assert [row.check_id for row in rows] == list(scanner.CHECK_IDS)
    page = response.content.decode()
    assert "pop3.plaintext_login on mail01" in page and "fix pop3.plaintext_login" in page


def test_the_server_page_breaks_checks_down_by_address(viewer):
    server = make_server("mail01")
    CheckState.objects.create(
        server=server,
        address="192.0.2.11",
        check_id="cert.validity",
        status="warn",
        summary="expires in 20 days on 192.0.2.11",
        since=timezone.now(),
    )
    response = viewer.get(server.get_absolute_url())
    assert [row.address for row in response.context["address_rows"]] == [ADDRESS, "192.0.2.11"]
    validity = next(r for r in response.context["check_rows"] if r.check_id == "cert.validity")
    assert (validity.worst.status, len(validity.states)) == ("warn", 2)
    assert "expires in 20 days on 192.0.2.11" in response.content.decode()


def test_the_server_page_survives_a_crashed_scan_with_no_facts(viewer):
    server = make_server("mail01")
    now = timezone.now()
    ScanRun.objects.create(
        server=server, purpose="scheduled", started_at=now, finished_at=now, error="Boom: bug"
    )
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert "The last scan crashed" in page and "Boom: bug" in page
    assert "No scan has stored facts yet." in page


def test_remediation_commands_are_shown_as_code_and_server_text_is_escaped(viewer):
    server = make_server("mail01", "non_compliant", checks={"cert.name": "fail"})
    CheckState.objects.filter(server=server, check_id="cert.name").update(
        remediation="Run `Set-PopSettings -LoginType SecureLogin` <script>"
    )
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert "<code>Set-PopSettings -LoginType SecureLogin</code> &lt;script&gt;" in page


def add_changes(server: Server, count: int) -> None:
    now = timezone.now()
    Change.objects.bulk_create(
        Change(
            server=server,
            check_id="cert.name",
            previous_status="pass" if i % 2 else "fail",
            status="fail" if i % 2 else "pass",
            summary=f"change {i}",
            created_at=now - timedelta(hours=i),
        )
        for i in range(count)
    )


def test_the_history_is_a_paginated_timeline_newest_first(viewer, monkeypatch):
    monkeypatch.setattr(views, "CHANGES_PER_PAGE", 2)
    server = make_server("mail01")
    add_changes(server, 3)
    url = reverse("dashboard:server_history", args=[server.pk])
    first = viewer.get(url)
    assert [c.summary for c in first.context["page"]] == ["change 0", "change 1"]
    assert "regression" in first.content.decode()
    assert [c.summary for c in viewer.get(url + "?page=2").context["page"]] == ["change 2"]


def test_the_server_page_and_history_run_a_constant_number_of_queries(
    viewer, django_assert_num_queries
):
    server = make_server("mail01")
    add_changes(server, 3)
    make_certificate("mail.example.com", 30, server)
    # Server page: session, user, role, server, tags, states, runs, facts, waivers in force,
    # addresses, certificates, changes, unresolved alerts, maintenance windows. History:
    # session, user, role, server, tags, count, page.
    with django_assert_num_queries(14):
        viewer.get(server.get_absolute_url())
    with django_assert_num_queries(7):
        viewer.get(reverse("dashboard:server_history", args=[server.pk]))
    add_changes(server, 30)
    make_certificate("other.example.com", 30, server)
    with django_assert_num_queries(14):
        viewer.get(server.get_absolute_url())
    with django_assert_num_queries(7):
        viewer.get(reverse("dashboard:server_history", args=[server.pk]))


# --- What changed --------------------------------------------------------------------------


def run_with(server: Server, minutes_ago: int, facts: dict) -> ScanRun:
    moment = timezone.now() - timedelta(minutes=minutes_ago)
    return ScanRun.objects.create(
        server=server, purpose="scheduled", started_at=moment, finished_at=moment, facts=facts
    )


def facts_with(plaintext: str, login_type: str, tls10: bool) -> dict:
    check = {"id": "pop3.plaintext_login", "status": plaintext, "summary": plaintext}
    endpoint = {
        "address": ADDRESS,
        "login_type": login_type,
        "pop3": {"port": 110, "outcome": "ok", "greeting": "+OK hi"},
        "pop3s": {
            "port": 995,
            "outcome": "ok",
            "tls": {"version": "TLSv1.3", "cipher": "X", "accepted_versions": {"TLSv1": tls10}},
        },
    }
    return {"addresses": [ADDRESS], "checks": [check], "endpoints": [endpoint]}


def test_the_server_page_says_what_the_ca_said_of_the_certificate(viewer):
    server = make_server("mail01")
    facts = facts_with("pass", "SecureLogin", False)
    leaf = {
        "subject": "CN=mail01",
        "fingerprint_sha256": "ab12",
        "not_after": "2027-01-01T00:00:00Z",
    }
    facts["endpoints"][0]["pop3s"]["tls"]["chain"] = [leaf]
    revoked = {
        "method": "ocsp",
        "url": "http://ocsp.example.com/",
        "status": "revoked",
        "this_update": "2026-12-04T10:00:00Z",
        "next_update": "2026-12-05T10:00:00Z",
        "revoked_at": "2026-11-20T09:30:00Z",
        "reason": "keyCompromise",
        "error": None,
        "cached": False,
    }
    facts["endpoints"][0]["revocation"] = [
        {
            "fingerprint_sha256": "ab12",
            "ocsp_urls": ["http://ocsp.example.com/"],
            "crl_urls": [],
            "issuer": "CN=Example CA",
            "lookups": [revoked],
            "stapled": {"995": "not stapled"},
            "error": None,
        }
    ]
    run_with(server, 5, facts)
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert (
        "OCSP http://ocsp.example.com/: revoked on 2026-11-20T09:30:00Z (keyCompromise), "
        "next update 2026-12-05T10:00:00Z"
    ) in page
    assert "Stapling on 995: not stapled" in page


def test_the_server_page_names_the_tls_profile_and_lists_the_accepted_suites(viewer):
    server = make_server("mail01")
    facts = facts_with("fail", "SecureLogin", False)
    facts["endpoints"][0]["pop3s"]["support"] = {
        "accepted_versions": {"SSLv2": False, "SSLv3": True, "TLSv1.2": True},
        "cipher_suites": {
            "SSLv3": ["TLS_RSA_WITH_RC4_128_SHA"],
            "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"],
        },
        "server_order": True,
        "groups": ["x25519", "secp256r1"],
        "dh_bits": 1024,
        "compression": False,
        "secure_renegotiation": True,
        "error": None,
        "measured_at": (timezone.now() - timedelta(hours=3)).isoformat(timespec="seconds"),
    }
    run_with(server, 5, facts)
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert "TLS judged by" in page and "Mozilla intermediate" in page
    assert "Mozilla Server Side TLS guidelines, version 5.7" in page  # the source, as a tooltip
    assert "SSLv3: <strong>accepted</strong>" in page
    assert "TLS_RSA_WITH_RC4_128_SHA" in page and "TLS_RSA_WITH_3DES_EDE_CBC_SHA" in page
    assert "in the server's order" in page
    assert "DH prime 1024 bits" in page
    assert "hours ago)" in page  # a list reused from an earlier scan shows its age


def test_compare_shows_changed_verdicts_and_facts_only():
    server = make_server("mail01")
    older = run_with(server, 60, facts_with("pass", "SecureLogin", False))
    newer = run_with(server, 5, facts_with("fail", "PlainTextLogin", True))
    comparison = compare(newer, older)
    assert (comparison.older, comparison.newer) == (older, newer)
    assert [(d.check_id, d.before["status"], d.after["status"]) for d in comparison.checks] == [
        ("pop3.plaintext_login", "pass", "fail")
    ]
    assert (f"{ADDRESS} LoginType", "SecureLogin", "PlainTextLogin") in comparison.facts
    assert (f"{ADDRESS} port 995 (implicit TLS) accepts", "(none)", "TLS 1.0") in comparison.facts
    assert not any(label.endswith("banner") for label, _, _ in comparison.facts)


def test_the_compare_page_defaults_to_the_last_two_scans(viewer):
    server = make_server("mail01")
    run_with(server, 90, facts_with("pass", "SecureLogin", False))
    older = run_with(server, 60, facts_with("pass", "SecureLogin", False))
    newer = run_with(server, 5, facts_with("fail", "PlainTextLogin", False))
    response = viewer.get(reverse("dashboard:server_compare", args=[server.pk]))
    comparison = response.context["comparison"]
    assert (comparison.older, comparison.newer) == (older, newer)
    assert "PlainTextLogin" in response.content.decode()


def test_the_compare_page_compares_the_two_scans_picked(viewer):
    server = make_server("mail01")
    first = run_with(server, 90, facts_with("pass", "SecureLogin", False))
    run_with(server, 60, facts_with("fail", "SecureLogin", False))
    third = run_with(server, 5, facts_with("pass", "SecureLogin", False))
    url = reverse("dashboard:server_compare", args=[server.pk])
    response = viewer.get(f"{url}?a={first.pk}&b={third.pk}")
    assert response.context["comparison"].identical
    assert "Nothing changed" in response.content.decode()


def test_comparing_a_scan_of_another_server_is_404(viewer):
    server, other = make_server("mail01"), make_server("mail02")
    mine = run_with(server, 5, {})
    theirs = run_with(other, 5, {})
    url = reverse("dashboard:server_compare", args=[server.pk])
    assert viewer.get(f"{url}?a={mine.pk}&b={theirs.pk}").status_code == 404


# --- Certificates --------------------------------------------------------------------------


def test_the_certificates_page_lists_every_certificate_soonest_expiry_first(viewer):
    server = make_server("mail01")
    make_certificate("later.example.com", 90, server)
    make_certificate("expired.example.com", -3, server)
    make_certificate("replaced.example.com", 10)
    response = viewer.get(reverse("dashboard:certificates"))
    assert [c.common_name for c in response.context["page"]] == [
        "expired.example.com",
        "replaced.example.com",
        "later.example.com",
    ]
    current = viewer.get(reverse("dashboard:certificates") + "?current=on").context["page"]
    assert [c.common_name for c in current] == ["expired.example.com", "later.example.com"]
    assert "expired 3 days ago" in response.content.decode()


def test_the_certificates_page_runs_a_constant_number_of_queries(viewer, django_assert_num_queries):
    # Session, user, role, count, page, sightings with their servers.
    servers = [make_server(f"mail{i}") for i in range(3)]
    make_certificate("a.example.com", 10, *servers)
    with django_assert_num_queries(6):
        viewer.get(reverse("dashboard:certificates"))
    more = [make_server(f"more{i}") for i in range(6)]
    for i in range(5):
        make_certificate(f"b{i}.example.com", 10 + i, *more)
    with django_assert_num_queries(6):
        viewer.get(reverse("dashboard:certificates"))


# --- Display helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(days=2, hours=1), "in 2 days"),
        (timedelta(days=1, hours=1), "in 1 day"),
        (timedelta(hours=5), "expires today"),
        (timedelta(hours=-5), "expired today"),
        (timedelta(days=-1, hours=-1), "expired 1 day ago"),
        (timedelta(days=-3, hours=-1), "expired 3 days ago"),
    ],
)
def test_the_expiry_countdown_counts_whole_days(offset, text):
    now = timezone.now()
    assert countdown(now + offset, now) == text
