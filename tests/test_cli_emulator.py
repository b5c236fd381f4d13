"""`python -m scanner` end to end: a real process against the emulator and the lab DNS."""

import json
import subprocess
import sys

import pytest

from pop3lab.certs import root_ca_pem
from pop3lab.config import EndpointConfig
from pop3lab.hostile import HostileConfig
from tests.conftest import SERVICE_NAME


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "lab-root.pem"
    path.write_bytes(root_ca_pem())
    return str(path)


def run_cli(emulated, endpoints, ca_file, *extra):
    ports = [
        "--pop3-port",
        str(endpoints[0].pop3_port),
        "--pop3s-port",
        str(endpoints[0].pop3s_port),
    ]
    command = [
        sys.executable, "-m", "scanner", *(e.address for e in endpoints), "--name", SERVICE_NAME,
        *ports, "--ca-file", ca_file, "--resolver", emulated.dns_server.address, "--timeout", "2",
        *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_compliant_server_exits_0_with_the_json_contract(emulated, ca_file):
    endpoints = emulated.start_on_shared_ports(EndpointConfig())
    result = run_cli(emulated, endpoints, ca_file, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == endpoints[0].address
    assert report["compliant"] is True
    assert report["addresses"] == [endpoints[0].address]
    assert isinstance(report["duration_ms"], int)
    assert {check["id"] for check in report["checks"]} >= {"pop3.plaintext_login", "cert.name"}
    for check in report["checks"]:
        assert set(check) >= {"id", "status", "summary", "remediation", "address"}


def test_a_plaintext_login_server_exits_1_and_several_hosts_keep_their_order(emulated, ca_file):
    endpoints = emulated.start_on_shared_ports(
        EndpointConfig(login_type="PlainTextLogin"), EndpointConfig()
    )
    result = run_cli(emulated, endpoints, ca_file, "--json")
    assert result.returncode == 1
    reports = json.loads(result.stdout)
    assert [report["target"] for report in reports] == [e.address for e in endpoints]
    assert [report["compliant"] for report in reports] == [False, True]


def test_an_unanswering_server_exits_3(emulated, ca_file):
    endpoints = emulated.start_on_shared_ports(HostileConfig("no_banner"))
    result = run_cli(emulated, endpoints, ca_file, "--json")
    assert result.returncode == 3, result.stdout
    assert json.loads(result.stdout)["compliant"] is None


def test_the_text_report_names_the_failing_check_and_its_fix(emulated, ca_file):
    endpoints = emulated.start_on_shared_ports(EndpointConfig(login_type="PlainTextLogin"))
    result = run_cli(emulated, endpoints, ca_file)
    assert result.returncode == 1
    assert "pop3.plaintext_login" in result.stdout
    assert "Set-PopSettings" in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour codes
