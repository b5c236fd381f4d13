"""After "Scan now" the server page says what the scan changed, or that nothing changed."""

from __future__ import annotations

import pytest
from django.utils import timezone

from popcompliance.compliance.models import Change, CheckState, ScanRun
from tests.test_dashboard_views import ADDRESS, make_server

pytestmark = pytest.mark.django_db


def finished_run(server, **fields) -> ScanRun:
    now = timezone.now()
    return ScanRun.objects.create(
        server=server, purpose="manual", started_at=now, finished_at=now, **fields
    )


def page_after(client, server, run) -> str:
    return client.get(f"{server.get_absolute_url()}?scanned={run.pk}").content.decode()


def banner(html: str) -> str:
    start = html.index('id="scan-result"')
    return html[start : html.index("</div>", start)]


def test_a_scan_that_changed_checks_lists_each_change(viewer):
    server = make_server("mail01")
    run = finished_run(server, compliant=False)
    for check_id, before, after in [
        ("pop3.plaintext_login", "pass", "fail"),
        ("dns.srv", "", "warn"),
    ]:
        Change.objects.create(
            server=server,
            address=ADDRESS if check_id.startswith("pop3") else "",
            check_id=check_id,
            previous_status=before,
            status=after,
            summary="",
            created_at=run.finished_at,
            scan_run=run,
        )
    shown = banner(page_after(viewer, server, run))
    assert "2 changes." in shown
    assert f'pop3.plaintext_login</a> on <span class="mono">{ADDRESS}</span>' in shown
    assert "not checked →" in shown
    assert "nothing changed" not in shown


def test_a_scan_that_changed_nothing_says_so(viewer):
    server = make_server("mail01")
    shown = banner(page_after(viewer, server, finished_run(server, compliant=True)))
    assert "nothing changed." in shown
    assert "confirming" not in shown


def test_a_regression_awaiting_its_second_look_is_not_called_nothing(viewer):
    server = make_server("mail01")
    CheckState.objects.filter(server=server, check_id="pop3.plaintext_login").update(
        candidate_status="fail", candidate_count=1
    )
    shown = banner(page_after(viewer, server, finished_run(server, compliant=True)))
    assert "1 check is confirming a change with a second look" in shown


def test_a_crashed_scan_says_it_judged_nothing(viewer):
    server = make_server("mail01")
    shown = banner(page_after(viewer, server, finished_run(server, error="Boom")))
    assert "it crashed before it could judge anything" in shown


def test_another_servers_run_shows_no_result(viewer):
    server, other = make_server("mail01"), make_server("mail02")
    html = page_after(viewer, server, finished_run(other))
    assert 'id="scan-result"' not in html
