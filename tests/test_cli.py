"""The command line: argument errors, the values it builds, its output shape and exit status.
Scans against the emulator are end-to-end tests elsewhere; here reports are built by hand."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from scanner._cli import exit_status, main, parse_invocation, render, wants_colour
from tests.certificates import pem, self_signed
from tests.ports import free_port
from tests.test_report import make_report

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A real self-signed CA certificate in PEM, as an operator's enterprise CA would be."""
    certificate, _ = self_signed(
        "Test CA", (x509.BasicConstraints(ca=True, path_length=None), True)
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(pem(certificate))
    return path


def test_exit_status_is_0_when_every_target_is_compliant() -> None:
    assert exit_status([make_report(compliant=True), make_report(compliant=True)]) == 0


def test_exit_status_is_1_when_any_target_fails_even_beside_an_unknown_one() -> None:
    reports = [make_report(compliant=True), make_report(compliant=None), make_report()]
    assert exit_status(reports) == 1


def test_exit_status_is_3_when_nothing_fails_but_something_is_unknown() -> None:
    assert exit_status([make_report(compliant=True), make_report(compliant=None)]) == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "HOST"),
        (["pop.example.com", "--pop3-port", "0"], "--pop3-port"),
        (["pop.example.com", "--pop3s-port", "pop3s"], "--pop3s-port"),
        (["pop.example.com", "--timeout", "0"], "--timeout"),
        (["pop.example.com", "--timeout", "nan"], "--timeout"),
        (["pop.example.com", "--concurrency", "0"], "--concurrency"),
        (["pop.example.com", "--warn-days", "-1"], "--warn-days"),
        (["pop.example.com", "--resolver", "dns.example.com"], "--resolver"),
        (["pop.example.com", "--resolver", "192.0.2.53:99999"], "--resolver"),
        (["pop.example.com", "--warn-days", "5", "--critical-days", "10"], "--critical-days"),
        (["pop.example.com", "--ca-file", "/nonexistent/ca.pem"], "cannot read"),
        (["pop example.com"], "not a DNS name"),
        (["https://pop.example.com/"], "not a DNS name"),
        (["pop.example.com:995"], "not a DNS name"),
        (["192.0.2.10", "--name", "pop..example.com"], "--name"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_a_ca_file_without_certificates_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    assert main(["pop.example.com", "--ca-file", str(tmp_path / "key.pem")]) == 2
    assert "holds no PEM certificate" in capsys.readouterr().err


def test_a_binary_ca_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ca.der").write_bytes(b"\x30\x82\x01\xff\xfe")
    assert main(["pop.example.com", "--ca-file", str(tmp_path / "ca.der")]) == 2
    assert "not a PEM file" in capsys.readouterr().err


def test_the_ca_file_is_added_to_system_trust(ca_file: Path) -> None:
    policy = parse_invocation(["pop.example.com", "--ca-file", str(ca_file)]).policy
    assert policy.ca_bundle_pem == ca_file.read_text()
    assert policy.use_system_trust


def test_name_applies_to_every_host() -> None:
    invocation = parse_invocation(["192.0.2.10", "[2001:db8::1]", "--name", "Pop.Example.com."])
    assert [t.host for t in invocation.targets] == ["192.0.2.10", "2001:db8::1"]
    assert {t.service_name for t in invocation.targets} == {"pop.example.com"}


def test_an_internationalised_name_is_scanned_in_its_ascii_form() -> None:
    target = parse_invocation(["pop.bücher.example"]).targets[0]
    assert (target.host, target.service_name) == ("pop.xn--bcher-kva.example",) * 2


def test_ports_reach_the_target() -> None:
    invocation = parse_invocation(["mail.example.com", "--pop3-port=1110", "--pop3s-port=1995"])
    target = invocation.targets[0]
    assert (target.service_name, target.pop3_port, target.pop3s_port) == (
        "mail.example.com",
        1110,
        1995,
    )


def test_network_options_reach_the_settings() -> None:
    arguments = ["h.example", "--resolver=127.0.0.1:5353", "--timeout=2.5", "--concurrency=4"]
    settings = parse_invocation(arguments).settings
    assert (settings.resolver, settings.timeout, settings.concurrency) == ("127.0.0.1:5353", 2.5, 4)


def test_day_thresholds_reach_the_policy() -> None:
    invocation = parse_invocation(["h.example", "--warn-days=20", "--critical-days=3", "--json"])
    policy = invocation.policy
    assert (policy.warn_days, policy.critical_days, policy.ca_bundle_pem) == (20, 3, None)
    assert invocation.json


def test_the_profile_reaches_the_policy_and_defaults_to_mozilla_intermediate() -> None:
    assert parse_invocation(["mail.example.test"]).policy.tls_profile == "mozilla-intermediate"
    chosen = parse_invocation(["mail.example.test", "--profile", "nist-sp800-52r2"])
    assert chosen.policy.profile.title == "NIST SP 800-52 Rev. 2"


def test_an_unknown_profile_exits_2_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mail.example.test", "--profile", "mozilla-medium"]) == 2
    assert "mozilla-intermediate" in capsys.readouterr().err


def test_list_profiles_names_each_with_its_source_and_needs_no_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--list-profiles"]) == 0
    listed = capsys.readouterr().out
    for name in ("mozilla-modern", "mozilla-intermediate (default)", "mozilla-old"):
        assert name in listed
    for name in ("nist-sp800-52r2", "bsi-tr-02102-2", "pci-dss-4"):
        assert f"{name}: " in listed
    assert "version 5.7" in listed and "SP 800-52 Rev. 2" in listed and "2025-01" in listed


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--critical-days" in capsys.readouterr().out


def test_json_is_one_object_for_one_host() -> None:
    data = json.loads(render([make_report()], as_json=True, colour=False))
    assert data["target"] == "pop.example.com"


def test_json_is_an_array_in_input_order_for_several_hosts() -> None:
    reports = [make_report(host="b.example.com"), make_report(host="a.example.com")]
    data = json.loads(render(reports, as_json=True, colour=False))
    assert [item["target"] for item in data] == ["b.example.com", "a.example.com"]


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    primary, secondary = os.openpty()
    with open(secondary, "w") as terminal:
        assert wants_colour(terminal)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not wants_colour(terminal)
    os.close(primary)
    monkeypatch.delenv("NO_COLOR")
    assert not wants_colour(io.StringIO())


def test_python_m_scanner_exits_2_on_a_bad_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scanner", "pop.example.com", "--pop3-port", "70000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--pop3-port" in result.stderr and "70000" in result.stderr
    assert result.stdout == ""


def test_python_m_scanner_reports_json_and_exits_1_when_nothing_listens() -> None:
    ports = [f"--pop3-port={free_port()}", f"--pop3s-port={free_port()}"]
    result = subprocess.run(
        [sys.executable, "-m", "scanner", "127.0.0.1", *ports, "--timeout=5", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert (data["target"], data["compliant"]) == ("127.0.0.1", False)
    assert data["endpoints"][0]["pop3s"]["outcome"] == "closed"
