"""Every server the overview counts non-compliant has an alert that names why: a mixed fleet
of emulated servers (expired and wrong-name certificates, passwords in clear, compliant ones,
one that never greets), really scanned, recorded and alerted on."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pop3lab.fleet import MIX
from pop3lab.hostile import HostileConfig
from popcompliance.alerts.lifecycle import process_pending_changes
from popcompliance.alerts.models import Alert
from popcompliance.compliance.models import CheckState
from popcompliance.compliance.recording import record_report
from popcompliance.compliance.scanning import scan_servers
from popcompliance.inventory.models import Server
from tests.conftest import create_lab_policy, lab_server
from tests.people import client_as

FLEET = (*MIX, HostileConfig("no_banner"))


@pytest.fixture
def fleet(db, emulated, lab_dns, settings):
    """One inventory server per configuration, each scanned once and alerted on."""
    settings.POPC_DNS_RESOLVER = lab_dns.address
    settings.POPC_SCAN_TIMEOUT = 3
    policy = create_lab_policy()
    for index, config in enumerate(FLEET):
        endpoint = emulated.start(config)
        # A listener that is off still needs a port number: one nothing listens on.
        ports = (endpoint.pop3_port or 9, endpoint.pop3s_port or 9)
        lab_server(f"mail{index:02}", endpoint.address, *ports, policy=policy)
    servers = list(Server.objects.select_related("policy"))
    for server_id, report in scan_servers(servers).items():
        record_report(server_id, report, purpose="scheduled")
    process_pending_changes(timezone.now())


def non_compliant_on_the_overview(client) -> list[str]:
    url = reverse("dashboard:overview") + "?status=non_compliant"
    page = client.get(url).content.decode()
    return re.findall(r'<th scope="row"><a href="/servers/\d+/">([^<]+)</a>', page)


def test_every_non_compliant_server_has_an_alert_naming_a_failing_check(fleet):
    statuses = set(Server.objects.values_list("status", flat=True))
    assert statuses == {"compliant", "non_compliant", "unknown"}
    names = non_compliant_on_the_overview(client_as("viewer"))
    assert len(names) == Server.objects.filter(status="non_compliant").count() > 5
    failing = CheckState.objects.filter(status="fail", server__name__in=names)
    alerted = Alert.objects.open().filter(server__name__in=names)
    alerts = set(alerted.values_list("server__name", "check_id"))
    for name in names:
        checks = set(failing.filter(server__name=name).values_list("check_id", flat=True))
        assert {check for server, check in alerts if server == name} & checks, name


def test_an_expired_certificate_alone_makes_an_alert(fleet):
    expired = f"mail{[getattr(c, 'cert_kind', None) for c in FLEET].index('expired'):02}"
    failing = CheckState.objects.filter(server__name=expired, status="fail")
    assert set(failing.values_list("check_id", flat=True)) == {"cert.validity"}
    [alert] = Alert.objects.filter(server__name=expired)
    assert alert.check_id == "cert.validity" and "expired on" in alert.summary
