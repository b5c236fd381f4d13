"""`manage.py scan`: scans now through the workers' record path, with the CLI's exit status."""

import pytest
from django.core.management import CommandError, call_command

from pop3lab.config import EndpointConfig
from popcompliance.compliance.models import ScanRun
from popcompliance.inventory.models import Policy, Server
from tests.conftest import create_lab_policy, lab_server


@pytest.fixture
def lab_servers(db, emulated, settings, lab_dns):
    settings.POPC_DNS_RESOLVER = lab_dns.address
    policy = create_lab_policy()

    def make(name, config):
        endpoint = emulated.start(config)
        return lab_server(name, endpoint.address, endpoint.pop3_port, endpoint.pop3s_port, policy)

    return make


def run_scan(*args):
    with pytest.raises(SystemExit) as exited:
        call_command("scan", *args)
    return exited.value.code


def test_scanning_compliant_servers_exits_0_and_records_them(lab_servers, capsys):
    lab_servers("mail01", EndpointConfig())
    lab_servers("mail02", EndpointConfig(profile="exchange2010"))
    assert run_scan("--all") == 0
    assert ScanRun.objects.filter(purpose="manual").count() == 2
    assert set(Server.objects.values_list("status", flat=True)) == {"compliant"}
    assert "mail01: compliant" in capsys.readouterr().out


def test_a_plaintext_server_exits_1_and_is_named(lab_servers, capsys):
    lab_servers("secure", EndpointConfig())
    lab_servers("leaky", EndpointConfig(login_type="PlainTextLogin"))
    assert run_scan("leaky") == 1
    out = capsys.readouterr().out
    assert "leaky: NON-COMPLIANT (pop3.plaintext_login fail)" in out
    assert Server.objects.get(name="leaky").status == "non_compliant"
    assert not ScanRun.objects.filter(server__name="secure").exists()


def test_a_regression_is_confirmed_by_an_immediate_reprobe(lab_servers, fixed):
    server = lab_server("mail01", fixed.address, *fixed.ports, Policy.objects.get(name="lab"))
    with fixed.serving(EndpointConfig()):
        run_scan("mail01")
    with fixed.serving(EndpointConfig(login_type="PlainTextLogin")):
        assert run_scan("mail01") == 1
    purposes = list(
        ScanRun.objects.filter(server=server).order_by("pk").values_list("purpose", flat=True)
    )
    assert purposes == ["manual", "manual", "confirmation"]
    assert Server.objects.get(pk=server.pk).status == "non_compliant"


def test_unknown_names_and_mixed_arguments_are_refused(lab_servers):
    lab_servers("mail01", EndpointConfig())
    with pytest.raises(CommandError, match="no such server: nope"):
        call_command("scan", "mail01", "nope")
    with pytest.raises(CommandError, match="not both"):
        call_command("scan", "mail01", "--all")
