"""The command line (docs/cli.md): `python -m scanner HOST [HOST ...] [options]`.

Parsing turns arguments into the library's own values (Target, Settings, Policy), so the
validation the library does is the validation the command line does; anything wrong exits 2
with a message naming the option. Exit status: 0 all compliant, 1 any fail, 3 no fail but
something could not be determined, 2 bad arguments.

The monitoring password for `--login-user` comes from the environment (PASSWORD_VARIABLE),
never from an argument: every user on the machine can read a process's arguments (`ps`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from scanner._facts import ScanReport
from scanner._profiles import DEFAULT_PROFILE, PROFILES
from scanner._report import render_text, report_to_dict
from scanner._services import CLIENT_PROTOCOLS, DEFAULT_PROTOCOLS, parse_protocols
from scanner._suites import PROTOCOL_LABEL
from scanner._target import Credentials, Policy, Settings, Target, is_ip_address, parse_resolver

EXIT_COMPLIANT = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_INTERRUPTED = 130
PASSWORD_VARIABLE = "POPC_LOGIN_PASSWORD"

_DEFAULT_SETTINGS = Settings()
_DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Invocation:
    """What one run of the command was asked to do, as library values."""

    targets: tuple[Target, ...]
    settings: Settings
    policy: Policy
    json: bool


def exit_status(reports: Sequence[ScanReport]) -> int:
    """0 when every target is compliant, 1 when any fails, 3 when none fails but some target
    is unknown (a check is `error`). Reads `compliant`, the value the report shows."""
    verdicts = {report.compliant for report in reports}
    if False in verdicts:
        return EXIT_FAIL
    if None in verdicts:
        return EXIT_UNKNOWN
    return EXIT_COMPLIANT


# Letters, digits, hyphens and underscores (internal names use them) in dot-separated labels.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_NAME = re.compile(rf"(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?")


def _host(text: str) -> str:
    """A DNS name or an IP address (IPv6 optionally in brackets); anything else, such as a URL
    or `host:port`, is a usage mistake that DNS would only turn into a confusing error.
    Internationalised names become their ASCII form, which is what DNS and certificates hold."""
    if is_ip_address(text.strip("[]")):
        return text
    try:
        name = text.encode("idna").decode("ascii")
    except UnicodeError:
        name = ""
    if _NAME.fullmatch(name):
        return name
    raise argparse.ArgumentTypeError(f"not a DNS name or IP address: {text!r}")


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, not {text!r}")
    return int(text)


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not 0 < value <= 600:  # also rejects nan, which compares false with everything
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 600, not {text}")
    return value


def _protocols(text: str) -> tuple[str, ...]:
    try:
        return parse_protocols(text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _resolver(text: str) -> str:
    try:
        parse_resolver(text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None
    return text.strip()


def _ca_file(path: str) -> str:
    """The file's PEM text, after checking that OpenSSL finds at least one certificate in it:
    a typo'd path or a DER file should stop the run, not quietly scan without the CA."""
    try:
        with open(path, encoding="utf-8") as handle:
            pem = handle.read()
    except OSError as problem:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {problem.strerror}") from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{path} is not a PEM file (binary content)") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise argparse.ArgumentTypeError(f"{path} holds no PEM certificate") from None
    return pem


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults are read from Settings and Policy so they cannot drift."""
    parser = argparse.ArgumentParser(
        prog="python -m scanner",
        description="Check the POP3 security posture of mail servers from the outside.",
        epilog="Exit status: 0 all compliant, 1 any check fails, 3 none fails but some "
        "could not be determined, 2 bad arguments.",
    )
    parser.add_argument(
        "hosts", nargs="+", type=_host, metavar="HOST", help="DNS name or IP address"
    )
    parser.add_argument(
        "--name",
        type=_host,
        metavar="SERVICE_NAME",
        help="the name users connect to, checked against the certificate and in DNS; "
        "defaults to HOST when HOST is a name; with several HOSTs it applies to each "
        "(for example the backends behind one load-balanced name)",
    )
    parser.add_argument(
        "--ca-file",
        type=_ca_file,
        metavar="PEM",
        help="extra trusted CA certificates (PEM); the system trust store stays in use",
    )
    parser.add_argument(
        "--resolver", type=_resolver, metavar="IP[:PORT]", help="send every DNS query here"
    )
    settings, policy = _DEFAULT_SETTINGS, _DEFAULT_POLICY
    parser.add_argument(
        "--protocols",
        type=_protocols,
        default=DEFAULT_PROTOCOLS,
        metavar="LIST",
        help="client protocols the server serves, comma-separated: "
        f"{', '.join(p.name for p in CLIENT_PROTOCOLS)} (default: pop3); only these are probed",
    )
    for protocol in CLIENT_PROTOCOLS:
        cleartext, implicit = protocol.cleartext_field, protocol.implicit_tls_field
        _option(
            parser,
            "--" + cleartext.replace("_", "-"),
            _port,
            protocol.cleartext_port,
            "PORT",
            f"cleartext {protocol.label} port",
        )
        _option(
            parser,
            "--" + implicit.replace("_", "-"),
            _port,
            protocol.implicit_tls_port,
            "PORT",
            f"implicit-TLS {protocol.implicit_tls_label} port",
        )
    _option(
        parser, "--timeout", _seconds, settings.timeout, "SECONDS", "per connection, reads included"
    )
    _option(parser, "--concurrency", _count(1), settings.concurrency, "N", "parallel scans")
    parser.add_argument(
        "--profile",
        choices=[profile.name for profile in PROFILES],
        default=policy.tls_profile,
        metavar="NAME",
        help=f"the TLS profile to judge by (default: {policy.tls_profile}; see --list-profiles)",
    )
    parser.add_argument(
        "--list-profiles",
        action=_ListProfiles,
        help="list the TLS profiles with their versions and sources, and exit",
    )
    _option(parser, "--warn-days", _count(0), policy.warn_days, "N", "warn at <= N days left")
    _option(parser, "--critical-days", _count(0), policy.critical_days, "N", "fail at <= N days")
    parser.add_argument(
        "--login-user",
        metavar="USER",
        help="also log in over TLS (POP3S, else STLS) as this monitoring account, once per "
        f"address; the password is read from the environment variable {PASSWORD_VARIABLE}",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


class _ListProfiles(argparse.Action):
    """`--list-profiles`: print every profile and exit, like --help (no HOST needed)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        sys.stdout.write(describe_profiles())
        parser.exit(0)


def describe_profiles() -> str:
    """One paragraph per profile: name and title, versions, key sizes, source."""
    paragraphs = []
    for profile in PROFILES:
        default = " (default)" if profile.name == DEFAULT_PROFILE else ""
        versions = ", ".join(PROTOCOL_LABEL[version] for version in profile.versions)
        paragraphs.append(
            f"{profile.name}{default}: {profile.title}\n"
            f"  versions: {versions}\n"
            f"  forbids: {', '.join(sorted(profile.forbidden))}\n"
            f"  warns on: {', '.join(sorted(profile.discouraged)) or 'nothing else'}"
            f"{'' if profile.recommended is None else ', suites outside its list'}\n"
            f"  minimum DH {profile.min_dh_bits}, RSA {profile.min_rsa_bits}, "
            f"EC {profile.min_ec_bits} bits\n"
            f"  source: {profile.source}\n"
        )
    return "\n".join(paragraphs)


def _option(
    parser: argparse.ArgumentParser,
    flag: str,
    kind: Callable[[str], object],
    default: object,
    var: str,
    what: str,
) -> None:
    parser.add_argument(
        flag, type=kind, default=default, metavar=var, help=f"{what} (default: {default})"
    )


def parse_invocation(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Invocation:
    """Arguments (and the environment, os.environ by default) → library values. Bad arguments
    raise SystemExit(2) after printing usage and a message naming the option (argparse's
    convention)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.critical_days > args.warn_days:
        parser.error(
            f"--critical-days ({args.critical_days}) must not exceed --warn-days ({args.warn_days})"
        )
    try:
        credentials = _credentials(args.login_user, os.environ if environ is None else environ)
        targets = tuple(
            Target(
                host,
                args.name,
                protocols=args.protocols,
                credentials=credentials,
                **{
                    field: getattr(args, field)
                    for protocol in CLIENT_PROTOCOLS
                    for field in (protocol.cleartext_field, protocol.implicit_tls_field)
                },
            )
            for host in args.hosts
        )
    except ValueError as problem:
        parser.error(str(problem))
    settings = Settings(timeout=args.timeout, resolver=args.resolver, concurrency=args.concurrency)
    policy = Policy(
        warn_days=args.warn_days,
        critical_days=args.critical_days,
        ca_bundle_pem=args.ca_file,
        tls_profile=args.profile,
    )
    return Invocation(targets, settings, policy, json=args.json)


def _credentials(user: str | None, environ: Mapping[str, str]) -> Credentials | None:
    """The monitoring account of --login-user, its password from the environment."""
    if user is None:
        return None
    password = environ.get(PASSWORD_VARIABLE)
    if not password:
        raise ValueError(
            f"--login-user needs the password in the environment variable {PASSWORD_VARIABLE} "
            "(never on the command line, where other users can read it)"
        )
    try:
        return Credentials(user, password)
    except ValueError as problem:
        # Name the option; the library's message says username or password.
        raise ValueError(f"--login-user / {PASSWORD_VARIABLE}: {problem}") from None


def render(reports: list[ScanReport], *, as_json: bool, colour: bool) -> str:
    """The command's standard output: one JSON object for one report, an array for several
    (input order), or the text report."""
    if not as_json:
        return render_text(reports, colour=colour)
    objects = [report_to_dict(report) for report in reports]
    return json.dumps(objects[0] if len(objects) == 1 else objects, indent=2) + "\n"


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


class _Progress:
    """`scanned 3/10: host` on a terminal's stderr, overwritten in place, so stdout stays
    clean for the report or the JSON."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream

    def __call__(self, report: ScanReport) -> None:
        self.done += 1
        self.stream.write(f"\r\x1b[Kscanned {self.done}/{self.total}: {report.target.host}")
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


def _scan(invocation: Invocation) -> list[ScanReport]:
    # Imported here so that argument handling (and its tests) does not load the network code.
    from scanner._probe import scan

    progress = _Progress(len(invocation.targets), sys.stderr) if sys.stderr.isatty() else None
    try:
        return scan(invocation.targets, invocation.settings, invocation.policy, progress=progress)
    finally:
        if progress is not None:
            progress.finish()


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status instead of exiting, for tests and embedding."""
    try:
        invocation = parse_invocation(sys.argv[1:] if argv is None else argv)
    except SystemExit as stop:  # argparse exits for --help (0) and for bad arguments (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        reports = _scan(invocation)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    sys.stdout.write(render(reports, as_json=invocation.json, colour=wants_colour(sys.stdout)))
    return exit_status(reports)
