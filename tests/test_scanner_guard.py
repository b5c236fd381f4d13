"""The scanner guard: link-local and metadata addresses are never scanned, an allowlist limits
scanning to its networks; refused on the form and in the API for an IP host, at scan time for
a name that resolves into a refused range (nothing connects)."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

import scanner
from popcompliance.compliance.scanning import scan_settings
from popcompliance.inventory.models import Policy, Server
from tests.dnsserver import DnsServer
from tests.people import client_as, make_user, token_for

REFUSED = "refused by the scanner guard"
# With monitoring credentials every per-address check has something to judge, the login too.
MONITOR = scanner.Credentials("monitor", "never-sent")


# --- The pure check -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
    ],
)
def test_link_local_and_metadata_addresses_are_refused_by_default(address: str) -> None:
    reason = scanner.Settings().refusal(address)
    assert reason is not None and REFUSED in reason


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.7",
        "10.1.2.3",
        "127.0.0.1",
        "::1",
        "2001:db8::1",
        "64:ff9b::c000:207",
        "2002:c000:207::1",
    ],
)
def test_other_addresses_are_scanned_by_default(address: str) -> None:
    assert scanner.Settings().refusal(address) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"])
def test_the_unspecified_addresses_are_always_refused(address: str) -> None:
    everything = scanner.Settings(allow_networks=("0.0.0.0/0", "::/0"))
    for settings in (scanner.Settings(), everything):
        assert "unspecified" in (settings.refusal(address) or "")


@pytest.mark.parametrize(
    "address",
    [
        "::169.254.169.254",  # IPv4-compatible
        "::ffff:169.254.169.254",  # IPv4-mapped
        "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
        "64:ff9b:1:a9fe:a9:fe00::",  # NAT64, local-use /48: the octets around bits 64-71
        "2002:a9fe:a9fe::1",  # 6to4
    ],
)
def test_ipv6_embeddings_of_the_metadata_address_are_refused(address: str) -> None:
    reason = scanner.Settings(allow_networks=("::/0", "0.0.0.0/0")).refusal(address)
    assert reason is not None and "169.254.0.0/16" in reason


def test_the_embedded_ipv4_address_is_read_at_each_position() -> None:
    from scanner._guard import embedded_ipv4

    expected = ipaddress.IPv4Address("192.0.2.33")
    for text in ("::192.0.2.33", "64:ff9b::c000:221", "64:ff9b:1:c000:2:2100::", "2002:c000:221::"):
        assert embedded_ipv4(ipaddress.IPv6Address(text)) == expected, text
    assert embedded_ipv4(ipaddress.IPv6Address("2001:db8::c000:221")) is None


LOOPBACK_GUARD = "POPC_SCAN_ALLOW_NETWORKS"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ],
)
def test_loopback_is_refused_when_asked_naming_the_setting_that_allows_it(address: str) -> None:
    reason = scanner.Settings(refuse_loopback_unless_allowed_by=LOOPBACK_GUARD).refusal(address)
    assert reason is not None and "loopback" in reason and LOOPBACK_GUARD in reason


def test_an_allowlist_covering_loopback_lets_it_be_scanned() -> None:
    lab = scanner.Settings(
        allow_networks=("127.0.0.0/8", "::1/128"), refuse_loopback_unless_allowed_by=LOOPBACK_GUARD
    )
    assert lab.refusal("127.0.0.1") is None
    assert lab.refusal("::1") is None
    assert lab.refusal("::ffff:127.0.0.2") is None
    assert "outside the allowed networks" in (lab.refusal("192.0.2.7") or "")


def test_an_allowlist_scans_only_its_networks_and_keeps_the_refused_ranges() -> None:
    settings = scanner.Settings(allow_networks=("10.0.0.0/8", "2001:db8::/32", "169.254.0.0/16"))
    assert settings.refusal("10.9.8.7") is None
    assert settings.refusal("2001:db8::5") is None
    assert "outside the allowed networks" in (settings.refusal("192.0.2.7") or "")
    assert "outside the allowed networks" in (settings.refusal("2001:db9::5") or "")
    assert REFUSED in (settings.refusal("169.254.169.254") or "")


@pytest.mark.parametrize("address", ["2002:a01:203::1", "::10.1.2.3", "64:ff9b::a01:203"])
def test_an_allowed_ipv4_network_does_not_allow_the_ipv6_hosts_that_forward_to_it(
    address: str,
) -> None:
    settings = scanner.Settings(allow_networks=("10.0.0.0/8",))
    assert "outside the allowed networks" in (settings.refusal(address) or "")
    assert settings.refusal("::ffff:10.1.2.3") is None  # mapped: the IPv4 host itself


def test_a_bad_network_is_refused_when_settings_are_built() -> None:
    with pytest.raises(ValueError, match=re.escape("allow_networks: '10.0.0.1/8'")):
        scanner.Settings(allow_networks=("10.0.0.1/8",))
    with pytest.raises(ValueError, match="not a network"):
        scanner.Settings(allow_networks=("intranet",))


# --- At scan time ---------------------------------------------------------------------------


def _declared(checks: Any) -> list[Any]:
    """The checks of a POP3-only target that judge something: those of IMAP4 and submission
    are skipped as not declared, without any connection."""
    return [check for check in checks if scanner.CHECKS[check.id].protocol in (None, "pop3")]


async def _no_connection(address: str, *args: Any) -> Any:
    raise AssertionError(f"the scanner connected to {address}")


def test_a_name_resolving_into_a_refused_range_is_not_connected_to(
    dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns_server.add("meta.example.test", "A", "169.254.169.254")
    dns_server.add("meta.example.test", "AAAA", "fd00:ec2::254")
    monkeypatch.setattr("scanner._probe.probe_address", _no_connection)
    settings = scanner.Settings(timeout=3, resolver=dns_server.address, enumerate_tls=False)
    [report] = scanner.scan([scanner.Target("meta.example.test", credentials=MONITOR)], settings)
    assert set(report.addresses) == {"169.254.169.254", "fd00:ec2::254"}
    assert report.address_checks
    for check in _declared(report.address_checks):
        assert check.status == "error", check
        assert REFUSED in check.summary, check
    assert report.compliant is None or report.compliant is False


def test_an_ip_target_outside_the_allowlist_is_not_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("scanner._probe.probe_address", _no_connection)
    settings = scanner.Settings(timeout=3, allow_networks=("10.0.0.0/8",))
    [report] = scanner.scan([scanner.Target("192.0.2.7", credentials=MONITOR)], settings)
    assert {check.status for check in _declared(report.address_checks)} == {"error"}


def test_the_dashboard_passes_its_allowlist_to_the_scanner(settings: Any) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = ["10.0.0.0/8"]
    assert scan_settings().allow_networks == ("10.0.0.0/8",)
    assert scan_settings().refusal("192.0.2.7") is not None


def test_the_workers_refuse_loopback_unless_the_setting_allows_it(settings: Any) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = []
    assert "POPC_SCAN_ALLOW_NETWORKS" in (scan_settings().refusal("127.0.0.1") or "")
    assert scan_settings().refusal("192.0.2.7") is None
    settings.POPC_SCAN_ALLOW_NETWORKS = ["127.0.0.0/8"]
    assert scan_settings().refusal("127.0.0.1") is None


def test_a_worker_scan_of_loopback_connects_nowhere_by_default(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = []
    monkeypatch.setattr("scanner._probe.probe_address", _no_connection)
    targets = [scanner.Target("127.0.0.1", credentials=MONITOR)]
    [report] = scanner.scan(targets, dataclasses.replace(scan_settings(), timeout=3))
    summaries = {check.summary for check in _declared(report.address_checks)}
    assert summaries and all("POPC_SCAN_ALLOW_NETWORKS" in summary for summary in summaries)


# --- The form and the API --------------------------------------------------------------------


def server_form(host: str) -> dict[str, Any]:
    return {
        "name": "meta",
        "host": host,
        "service_name": "",
        "protocols": ["pop3"],
        "pop3_port": 110,
        "pop3s_port": 995,
        "imap_port": 143,
        "imaps_port": 993,
        "submission_port": 587,
        "submissions_port": 465,
        "site": "",
        "policy": Policy.default().pk,
        "scan_interval": 30,
        "owners": "",
        "tag_names": "",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["169.254.169.254", "fd00:ec2::254", "[fe80::1]"])
def test_the_form_refuses_a_metadata_address(host: str) -> None:
    response = client_as("admin").post(reverse("inventory:server_add"), server_form(host))
    assert response.status_code == 200
    assert REFUSED in " ".join(response.context["form"].errors["host"])
    assert not Server.objects.exists()


@pytest.mark.django_db
def test_the_form_refuses_an_address_outside_the_allowlist(settings: Any) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = ["10.0.0.0/8"]
    admin = client_as("admin")
    response = admin.post(reverse("inventory:server_add"), server_form("192.0.2.7"))
    assert "outside the allowed networks" in " ".join(response.context["form"].errors["host"])
    # Names are judged at scan time, on what they resolve to.
    assert (
        admin.post(reverse("inventory:server_add"), server_form("pop.example.com")).status_code
        == 302
    )
    assert (
        admin.post(
            reverse("inventory:server_add"), server_form("10.0.0.5") | {"name": "inside"}
        ).status_code
        == 302
    )


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0", "::", "64:ff9b::a9fe:a9fe"])
def test_the_form_refuses_loopback_unspecified_and_embedded_metadata(
    host: str, settings: Any
) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = []
    response = client_as("admin").post(reverse("inventory:server_add"), server_form(host))
    assert REFUSED in " ".join(response.context["form"].errors["host"])
    assert not Server.objects.exists()


@pytest.mark.django_db
def test_the_form_takes_loopback_when_the_setting_allows_it(settings: Any) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = ["127.0.0.0/8"]
    response = client_as("admin").post(reverse("inventory:server_add"), server_form("127.0.0.1"))
    assert response.status_code == 302
    assert Server.objects.get().host == "127.0.0.1"


@pytest.mark.django_db
def test_the_api_refuses_loopback_naming_the_setting(settings: Any) -> None:
    settings.POPC_SCAN_ALLOW_NETWORKS = []
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user('admin'))}")
    response = client.post("/api/v1/servers/", {"name": "me", "host": "127.0.0.1"}, format="json")
    assert response.status_code == 400
    assert "POPC_SCAN_ALLOW_NETWORKS" in " ".join(response.json()["host"])
    assert not Server.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_a_metadata_address_with_a_400_on_the_host() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user('admin'))}")
    data = {"name": "meta", "host": "169.254.169.254"}
    response = client.post("/api/v1/servers/", data, format="json")
    assert response.status_code == 400
    assert REFUSED in " ".join(response.json()["host"])
    assert not Server.objects.exists()


def test_the_command_line_probes_loopback_but_not_the_metadata_address() -> None:
    # An operator runs `python -m scanner` on their own machine, where loopback is theirs to
    # probe (test_cli_emulator scans the emulator on 127.x through a real process).
    from scanner._cli import _DEFAULT_SETTINGS

    assert _DEFAULT_SETTINGS.refuse_loopback_unless_allowed_by is None
    assert _DEFAULT_SETTINGS.refusal("127.0.0.1") is None
    assert REFUSED in (_DEFAULT_SETTINGS.refusal("64:ff9b::a9fe:a9fe") or "")
