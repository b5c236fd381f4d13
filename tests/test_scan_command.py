"""`manage.py scan`: scans now through the workers' record path, with the CLI's exit status."""

import pytest
from django.core.management import CommandError, call_command

import scanner._probe as scanner_probe
from pop3lab.config import EndpointConfig
from popcompliance.compliance.models import CheckState, ScanRun
from popcompliance.compliance.scanning import ScanFailed
from popcompliance.compliance.tasks import scan_server
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


@pytest.fixture
def crashing_probe(monkeypatch):
    """The probe of `address` stops on an error nobody foresaw (a bug of ours, injected); the
    others run for real."""
    real_probe = scanner_probe.probe_address

    def crash_on(address):
        async def probe(probed, *args, **kwargs):
            if probed == address:
                raise RuntimeError("injected fault")
            return await real_probe(probed, *args, **kwargs)

        monkeypatch.setattr(scanner_probe, "probe_address", probe)

    return crash_on


def test_a_scan_that_crashes_costs_its_server_only(lab_servers, crashing_probe, capsys):
    healthy = lab_servers("mail01", EndpointConfig())
    broken = lab_servers("mail02", EndpointConfig())
    crashing_probe(broken.host)
    assert run_scan("--all") == 3
    out = capsys.readouterr().out
    assert "mail01: compliant" in out
    assert "mail02: scan failed (RuntimeError: injected fault)" in out
    assert Server.objects.get(pk=healthy.pk).status == "compliant"
    assert ScanRun.objects.get(server=healthy).error == ""
    # The crash is kept as one: a scan run saying why, and no check judged from it.
    assert ScanRun.objects.get(server=broken).error == "RuntimeError: injected fault"
    assert not CheckState.objects.filter(server=broken).exists()
    assert CheckState.objects.filter(server=healthy, status="pass").exists()


def test_a_worker_records_a_crashed_scan_as_a_crash(lab_servers, crashing_probe):
    broken = lab_servers("mail02", EndpointConfig())
    crashing_probe(broken.host)
    with pytest.raises(ScanFailed, match="RuntimeError: injected fault"):
        scan_server(broken.pk)
    assert ScanRun.objects.get(server=broken).error == "RuntimeError: injected fault"
    assert not CheckState.objects.filter(server=broken).exists()
