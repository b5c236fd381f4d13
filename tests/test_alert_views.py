"""The alerts pages: the list by state, one alert with its emails, acknowledging; and the open
alerts on the overview and the server page. The cast: an operator, a viewer and an anonymous
visitor. Alerts are made as rows, except in the last test, where a real regression of the
emulator opens one."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from popcompliance.accounts.roles import set_role
from popcompliance.alerts import views
from popcompliance.alerts.lifecycle import process_pending_changes, send_reminders
from popcompliance.alerts.models import Alert, Notification
from popcompliance.inventory.models import Server
from tests.people import client_as
from tests.test_alerts import make_server as make_lab_server
from tests.test_alerts import regress
from tests.test_dashboard_views import make_server

pytestmark = pytest.mark.django_db

CHECK = "pop3.plaintext_login"


def make_alert(server: Server, check_id: str = CHECK, *, hours_ago: float = 1, **fields) -> Alert:
    """An alert opened `hours_ago`, with its server's state of the check failing on one
    address (make_server's), unless `fields` say otherwise."""
    server.check_states.filter(check_id=check_id).update(status="fail")
    values = {
        "status": "fail",
        "address": "192.0.2.10",
        "summary": f"{check_id} fails on {server.name}: +OK after USER",
        "remediation": "Run `Set-PopSettings -LoginType SecureLogin`",
        "opened_at": timezone.now() - timedelta(hours=hours_ago),
    } | fields
    return Alert.objects.create(server=server, check_id=check_id, **values)


def acknowledged(server: Server, check_id: str = CHECK, **fields) -> Alert:
    user = User.objects.create_user(f"ack-{server.name}-{check_id}")
    values = {"acknowledged_at": timezone.now(), "acknowledged_by": user, "ack_comment": "known"}
    return make_alert(server, check_id, **(values | fields))


def resolved(server: Server, check_id: str = CHECK, **fields) -> Alert:
    return make_alert(server, check_id, **({"resolved_at": timezone.now()} | fields))


def listed(client: Client, query: str = "") -> list[Alert]:
    response = client.get(f"{reverse('alerts:list')}{query}")
    assert response.status_code == 200
    return [row.alert for row in response.context["rows"]]


def acknowledge_url(alert: Alert) -> str:
    return reverse("alerts:acknowledge", args=[alert.pk])


def in_future(**delta: float) -> str:
    """A moment in the "T" form a browser's date-time input sends, which the form accepts too."""
    return (timezone.localtime() + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M")


# --- Access --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alerts:list", "alerts:detail"])
def test_anonymous_visitors_go_to_the_login_page(name):
    alert = make_alert(make_server("mail01"))
    url = reverse(name, args=[alert.pk] if name == "alerts:detail" else [])
    response = client_as(None).get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_anonymous_visitors_cannot_acknowledge():
    alert = make_alert(make_server("mail01"))
    response = client_as(None).post(acknowledge_url(alert), {"comment": "known"})
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    assert Alert.objects.get().acknowledged_at is None


def test_a_viewer_reads_the_list_and_an_alert_but_sees_no_control(viewer):
    alert = make_alert(make_server("mail01"))
    for url in [reverse("alerts:list"), alert.get_absolute_url()]:
        page = viewer.get(url).content.decode()
        assert not re.search(r"<button[^>]*>Acknowledge", page)
        # The only form that posts is the one that logs out.
        assert page.count('method="post"') == 1
        assert f'action="{reverse("accounts:logout")}"' in page


def test_a_viewers_acknowledgement_is_refused(viewer):
    alert = make_alert(make_server("mail01"))
    assert viewer.post(acknowledge_url(alert), {"comment": "known"}).status_code == 403
    assert Alert.objects.get().acknowledged_at is None


def test_acknowledging_refuses_get(operator):
    alert = make_alert(make_server("mail01"))
    assert operator.get(acknowledge_url(alert)).status_code == 405


def test_acknowledging_needs_the_csrf_token():
    alert = make_alert(make_server("mail01"))
    client = Client(enforce_csrf_checks=True)
    user = User.objects.create_user("operator-user")
    set_role(user, "operator")
    client.force_login(user)
    assert client.post(acknowledge_url(alert), {"comment": "known"}).status_code == 403
    assert Alert.objects.get().acknowledged_at is None


def test_an_unknown_alert_is_404(operator):
    assert operator.get(reverse("alerts:detail", args=[999999])).status_code == 404
    assert operator.post(reverse("alerts:acknowledge", args=[999999])).status_code == 404


def test_the_navigation_links_to_the_alerts_page(viewer):
    page = viewer.get(reverse("dashboard:overview")).content.decode()
    assert f'<a href="{reverse("alerts:list")}">Alerts</a>' in page


def test_an_alert_links_to_its_page_which_emails_point_to():
    alert = make_alert(make_server("mail01"))
    assert alert.get_absolute_url() == reverse("alerts:detail", args=[alert.pk])


# --- Acknowledging -------------------------------------------------------------------------


def test_an_operator_acknowledges_with_a_comment_until_a_moment(operator):
    alert = make_alert(make_server("mail01"))
    until = in_future(days=2)
    response = operator.post(acknowledge_url(alert), {"comment": "change window", "until": until})
    assert response.status_code == 302
    assert response.url == f"{reverse('alerts:list')}?state=acknowledged#alert-{alert.pk}"
    alert.refresh_from_db()
    assert (alert.state(), alert.ack_comment) == ("acknowledged", "change window")
    assert alert.acknowledged_by.username == "operator-user"
    assert timezone.localtime(alert.ack_until).strftime("%Y-%m-%dT%H:%M") == until
    page = operator.get(response.url).content.decode()
    assert "no reminders until" in page and "change window" in page


def test_an_acknowledgement_without_until_holds_until_resolved(operator):
    alert = make_alert(make_server("mail01"))
    response = operator.post(acknowledge_url(alert), {"comment": "known", "until": ""}, follow=True)
    assert "no reminders until it is resolved" in response.content.decode()
    alert.refresh_from_db()
    assert (alert.state(), alert.ack_until) == ("acknowledged", None)


@pytest.mark.parametrize("comment", ["", "   \n "])
def test_an_acknowledgement_needs_a_comment(operator, comment):
    alert = make_alert(make_server("mail01"))
    response = operator.post(acknowledge_url(alert), {"comment": comment})
    assert response.status_code == 200
    assert "a comment is required" in response.content.decode()
    assert Alert.objects.get().acknowledged_at is None


@pytest.mark.parametrize(("minutes", "accepted"), [(-1, False), (0, False), (1, True)])
def test_until_must_be_in_the_future(operator, minutes, accepted):
    # Judged on a whole minute, as the browser sends minutes.
    moment = timezone.localtime().replace(second=0, microsecond=0) + timedelta(minutes=1)
    until = (moment + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")
    alert = make_alert(make_server("mail01"))
    with time_machine.travel(moment, tick=False):
        response = operator.post(acknowledge_url(alert), {"comment": "known", "until": until})
    assert (response.status_code == 302) is accepted
    assert (Alert.objects.get().acknowledged_at is not None) is accepted
    if not accepted:
        assert "Pick a moment in the future" in response.content.decode()


def test_acknowledging_an_alert_resolved_meanwhile_changes_nothing(operator):
    alert = resolved(make_server("mail01"))
    response = operator.post(acknowledge_url(alert), {"comment": "known"}, follow=True)
    assert response.redirect_chain == [(alert.get_absolute_url(), 302)]
    assert "was resolved meanwhile" in response.content.decode()
    assert Alert.objects.get().acknowledged_at is None


def test_the_list_button_opens_the_form_on_the_alerts_page(operator):
    alert = make_alert(make_server("mail01"))
    page = operator.get(reverse("alerts:list")).content.decode()
    assert f'action="{alert.get_absolute_url()}#acknowledge"' in page
    assert '<button type="submit">Acknowledge<span class="visually-hidden">' in page
    form = operator.get(alert.get_absolute_url() + "?acknowledge=1").content.decode()
    assert f'action="{acknowledge_url(alert)}"' in form
    assert re.search(r'<textarea name="comment"[^>]* autofocus', form)
    assert 'placeholder="YYYY-MM-DD HH:MM"' in form


def test_acknowledging_again_starts_from_the_current_acknowledgement(operator):
    alert = acknowledged(make_server("mail01"), ack_comment="vendor ticket 42")
    response = operator.get(alert.get_absolute_url())
    assert response.context["form"]["comment"].value() == "vendor ticket 42"
    assert "Change the acknowledgement" in response.content.decode()


# --- The list ------------------------------------------------------------------------------


@pytest.fixture
def alerts_in_every_state() -> dict[str, Alert]:
    """Alerts of three servers: open ones (one whose acknowledgement expired), an
    acknowledged one, and two resolved ones."""
    a, b, c = make_server("a"), make_server("b"), make_server("c")
    past = timezone.now() - timedelta(minutes=5)
    return {
        "old": make_alert(a, hours_ago=30),
        "new": make_alert(b, hours_ago=1),
        "lapsed": acknowledged(c, "cert.name", hours_ago=5, ack_until=past),
        "acked": acknowledged(a, "cert.name", hours_ago=2),
        "fixed_early": resolved(c, hours_ago=50, resolved_at=timezone.now() - timedelta(hours=9)),
        "fixed_late": resolved(a, "dns.srv", hours_ago=40),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["new", "lapsed", "old"]),
        ("?state=open", ["new", "lapsed", "old"]),
        ("?state=acknowledged", ["acked"]),
        # Resolved: the latest to recover first.
        ("?state=resolved", ["fixed_late", "fixed_early"]),
        ("?state=bogus", ["new", "lapsed", "old"]),
    ],
)
def test_each_tab_lists_its_alerts_newest_first(viewer, alerts_in_every_state, query, expected):
    assert listed(viewer, query) == [alerts_in_every_state[name] for name in expected]


def test_the_tab_counts_agree_with_the_alert_states(viewer, alerts_in_every_state):
    response = viewer.get(reverse("alerts:list"))
    now = timezone.now()
    expected = [(s, Alert.objects.in_state(s, now).count()) for s in views.ORDERING]
    assert [(value, count) for value, _, count in response.context["tabs"]] == expected
    assert expected == [("open", 3), ("acknowledged", 1), ("resolved", 2)]


def test_a_row_shows_the_evidence_the_fix_and_where_it_fails_now(viewer, alerts_in_every_state):
    server = Server.objects.get(name="b")
    elsewhere = server.check_states.get(check_id=CHECK)
    elsewhere.pk, elsewhere.address = None, "192.0.2.99"
    elsewhere.save()
    response = viewer.get(reverse("alerts:list"))
    row = next(r for r in response.context["rows"] if r.alert.server == server)
    assert [state.address for state in row.findings] == ["192.0.2.10", "192.0.2.99"]
    page = response.content.decode()
    assert f"{CHECK} fails on b: +OK after USER" in page
    assert "<code>Set-PopSettings -LoginType SecureLogin</code>" in page
    assert "open for 1" in page and "hour" in page
    assert "Expired:" in page  # the lapsed acknowledgement


def test_a_resolved_row_shows_when_it_ended_and_the_acknowledgement(viewer):
    opened = timezone.now() - timedelta(hours=3)
    ended = {"opened_at": opened, "resolved_at": opened + timedelta(hours=2)}
    alert = resolved(make_server("mail01"), acknowledged_at=opened, ack_comment="known", **ended)
    page = viewer.get(reverse("alerts:list") + "?state=resolved").content.decode()
    assert "lasted 2\xa0hours" in page and "known" in page
    assert alert.resolved_at.strftime("%Y-%m-%d %H:%M") in page


def test_the_list_paginates(viewer, monkeypatch):
    monkeypatch.setattr(views, "ALERTS_PER_PAGE", 2)
    alerts = [make_alert(make_server(f"mail{i}"), hours_ago=i + 1) for i in range(3)]
    assert listed(viewer, "?page=2") == [alerts[2]]
    assert listed(viewer, "?state=open&page=2") == [alerts[2]]


@pytest.mark.parametrize(("state", "queries"), [("open", 6), ("acknowledged", 6), ("resolved", 5)])
def test_the_list_runs_a_constant_number_of_queries(
    operator, django_assert_num_queries, state, queries
):
    # Session, user, role, tab counts (also the page count), page with servers and
    # acknowledgers, and (while unresolved) the addresses where the checks fail now.
    def add(count: int, offset: int) -> None:
        for i in range(count):
            server = make_server(f"mail{offset + i}")
            {"open": make_alert, "acknowledged": acknowledged, "resolved": resolved}[state](server)
            make_alert(server, "cert.name")

    add(2, 0)
    with django_assert_num_queries(queries):
        operator.get(f"{reverse('alerts:list')}?state={state}")
    add(9, 100)
    with django_assert_num_queries(queries):
        operator.get(f"{reverse('alerts:list')}?state={state}")


# --- One alert -----------------------------------------------------------------------------


def notify(alert: Alert, to: str, now: datetime) -> Notification:
    return Notification.objects.create(
        kind="alert",
        to=to,
        subject=f"[PopCompliance] FAIL {alert.server.name}: {alert.check_id}",
        body_text="text",
        body_html="html",
        key=f"alert:{alert.pk}:{to}",
        message_id=Notification.new_message_id(),
        server=alert.server,
        alert=alert,
        created_at=now,
        next_attempt_at=now,
    )


def test_the_alert_page_shows_a_failed_email_with_each_attempt(viewer):
    alert = make_alert(make_server("mail01"))
    now = timezone.now()
    failed = notify(alert, "owner@example.test", now)
    failed.record_failure("421 4.3.2 try again later", False, now, 30)
    failed.record_failure("550 5.1.1 no such user", True, now + timedelta(minutes=1), 20)
    notify(alert, "ops@example.test", now).record_delivery(now, 15)
    page = viewer.get(alert.get_absolute_url()).content.decode()
    for text in ["owner@example.test", "Failed", "Transient error (will retry)", "Sent"]:
        assert text in page, text
    assert "421 4.3.2 try again later" in page and "550 5.1.1 no such user" in page


def test_the_alert_page_shows_the_checks_changes_while_open(viewer):
    server = make_server("mail01")
    alert = make_alert(server, hours_ago=3)
    now = timezone.now()
    for hours, summary in [(5, "before it opened"), (2, "escalated to fail")]:
        moment = now - timedelta(hours=hours)
        server.changes.create(check_id=CHECK, status="fail", summary=summary, created_at=moment)
    server.changes.create(check_id="dns.srv", status="warn", summary="other check", created_at=now)
    changes = viewer.get(alert.get_absolute_url()).context["changes"]
    assert [change.summary for change in changes] == ["escalated to fail"]


def test_the_alert_page_runs_a_constant_number_of_queries(operator, django_assert_num_queries):
    # Session, user, alert with its server, acknowledger and opening change, role, states,
    # changes, emails, their attempts.
    alert = make_alert(make_server("mail01"))
    now = timezone.now()
    notify(alert, "a@example.test", now).record_delivery(now, 10)
    with django_assert_num_queries(8):
        operator.get(alert.get_absolute_url())
    for i in range(5):
        notify(alert, f"b{i}@example.test", now).record_failure("421 busy", False, now, 10)
    with django_assert_num_queries(8):
        operator.get(alert.get_absolute_url())


# --- Overview and server page --------------------------------------------------------------


def test_the_overview_shows_the_open_alerts_newest_first_with_their_count(
    viewer, alerts_in_every_state
):
    response = viewer.get(reverse("dashboard:overview"))
    panel = response.context["open_alerts"]
    names = ["new", "lapsed", "old"]
    assert (panel.count, panel.newest) == (3, [alerts_in_every_state[n] for n in names])
    page = response.content.decode()
    assert f'href="{alerts_in_every_state["new"].get_absolute_url()}"' in page
    assert "All open (3)" in page


def test_the_overview_lists_a_few_open_alerts_and_counts_them_all(viewer):
    for i in range(10):
        make_alert(make_server(f"mail{i:02}"), hours_ago=i + 1)
    panel = viewer.get(reverse("dashboard:overview")).context["open_alerts"]
    assert panel.count == 10
    assert [a.server.name for a in panel.newest] == [f"mail{i:02}" for i in range(8)]


def test_the_overview_with_alerts_runs_a_constant_number_of_queries(
    viewer, django_assert_num_queries
):
    # As tests/test_dashboard_views.py pins it; one query for the open alerts and their count.
    make_alert(make_server("a0"))
    with django_assert_num_queries(18):
        viewer.get(reverse("dashboard:overview"))
    for i in range(1, 12):
        make_alert(make_server(f"a{i}"))
    cache.clear()  # the expiring-certificates panel and the email health are cached
    with django_assert_num_queries(18):
        viewer.get(reverse("dashboard:overview"))


def test_the_server_page_shows_its_unresolved_alerts(viewer):
    server = make_server("mail01")
    make_alert(server, hours_ago=1)
    acknowledged(server, "cert.name", hours_ago=2, ack_comment="vendor ticket 42")
    resolved(server, "dns.srv", summary="gone now")
    page = viewer.get(server.get_absolute_url()).content.decode()
    assert "not acknowledged" in page and "vendor ticket 42" in page
    assert [a.check_id for a, _ in viewer.get(server.get_absolute_url()).context["alerts"]] == [
        CHECK,
        "cert.name",
    ]


# --- A real alert --------------------------------------------------------------------------


def test_a_real_regressions_alert_is_listed_and_acknowledging_it_stops_reminders(
    operator, fixed, settings, lab_dns
):
    server = make_lab_server(fixed, settings, lab_dns)
    regress(server, fixed)
    opened = timezone.now()
    process_pending_changes(opened)
    alert = Alert.objects.get(server=server, check_id=CHECK)
    response = operator.get(reverse("alerts:list"))
    assert [row.alert for row in response.context["rows"]] == [alert]
    assert fixed.address in response.content.decode()
    operator.post(acknowledge_url(alert), {"comment": "known", "until": in_future(days=3)})
    with time_machine.travel(opened + timedelta(hours=25), tick=False):
        assert send_reminders(timezone.now()) == 0
    with time_machine.travel(opened + timedelta(days=3, hours=1), tick=False):
        assert send_reminders(timezone.now()) == 1
