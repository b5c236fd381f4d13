"""LoginType is Exchange's setting: a server known to be something else reads "not Exchange",
not "unknown" or a dash."""

from __future__ import annotations

import pytest
from django.utils import timezone

import scanner
from popcompliance.compliance.models import ScanRun, ServerAddress
from tests.test_dashboard_views import ADDRESS, make_server


@pytest.mark.parametrize(
    ("login_type", "product", "shown"),
    [
        ("SecureLogin", "Microsoft Exchange 2019", "SecureLogin"),
        (None, "Dovecot", "not Exchange"),
        ("", "Courier", "not Exchange"),
        (None, "Microsoft Exchange", "unknown"),
        (None, None, "unknown"),
        ("", "", "unknown"),
    ],
)
def test_the_label_says_not_exchange_only_when_the_product_is_known_to_be_other(
    login_type, product, shown
):
    assert scanner.login_type_label(login_type, product) == shown


@pytest.mark.django_db
def test_the_server_page_says_not_exchange_for_a_dovecot_address(viewer):
    server = make_server("mail01")
    now = timezone.now()
    ServerAddress.objects.create(
        server=server, address=ADDRESS, product="Dovecot", first_seen_at=now, last_seen_at=now
    )
    endpoint = {
        "address": ADDRESS,
        "product": "Dovecot",
        "login_type": None,
        "pop3": {"port": 110, "outcome": "ok"},
    }
    ScanRun.objects.create(
        server=server,
        purpose="scheduled",
        started_at=now,
        finished_at=now,
        facts={"endpoints": [endpoint]},
    )
    html = viewer.get(server.get_absolute_url()).content.decode()
    assert "<td>Dovecot</td><td>not Exchange</td>" in html
    assert "<dt>LoginType (inferred)</dt><dd>not Exchange</dd>" in html
