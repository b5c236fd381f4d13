"""`python -m pop3lab`: serve a fleet of emulated mail servers on loopback until interrupted.

Examples:
    python -m pop3lab --count 1000 --base 127.1.0.1 --mixed --pop3-port 11110 --pop3s-port 19950
    python -m pop3lab --count 1 --base 127.0.0.2 --profile exchange2010 --login-type PlainTextLogin
    python -m pop3lab --hostile --base 127.2.0.1 --manifest hostile.json
    python -m pop3lab --count 10 --mixed --ca-out lab-root.pem  (then: scanner --ca-file)
    python -m pop3lab --count 1 --base 127.0.0.2 --account monitor:s3cret  (a mailbox to log in to)
    python -m pop3lab --count 50 --profile exchange2013 --windows 2012r2  (SChannel's TLS)
    python -m pop3lab --count 10 --mixed --imap --submission  (IMAP4 and SMTP submission too)
    python -m pop3lab --count 1 --base 127.0.0.2 --imap --imap-login-type PlainTextLogin \
        --submission --submission-auth Tls,Integrated,BasicAuth

It prints one summary line, then `ready` once every listener is bound (scripts wait for it),
and serves until Ctrl-C or SIGTERM. Ports 110/995 work too, but need root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
from pathlib import Path

from pop3lab.certs import KINDS, root_ca_pem
from pop3lab.config import LOGIN_TYPES, PROFILES, SERVICES, SUBMISSION_AUTH, EndpointConfig
from pop3lab.fleet import (
    describe,
    hostile_fleet,
    mixed_fleet,
    serving,
    uniform_fleet,
    windows_fleet,
)
from pop3lab.lab import BoundEndpoint, EndpointSpec, Lab
from pop3lab.schannel import WINDOWS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring for examples."""
    parser = argparse.ArgumentParser(prog="python -m pop3lab", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1, help="number of endpoints")
    parser.add_argument("--base", default="127.1.0.1", help="first loopback address")
    parser.add_argument("--pop3-port", type=int, default=11110, help="0 = ephemeral per listener")
    parser.add_argument("--pop3s-port", type=int, default=19950, help="0 = ephemeral per listener")
    parser.add_argument("--imap", action="store_true", help="serve IMAP4 and IMAPS too")
    parser.add_argument("--imap-port", type=int, default=11143)
    parser.add_argument("--imaps-port", type=int, default=19930)
    parser.add_argument(
        "--submission", action="store_true", help="serve SMTP submission (STARTTLS and 465)"
    )
    parser.add_argument("--submission-port", type=int, default=11587)
    parser.add_argument("--submissions-port", type=int, default=11465)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--mixed", action="store_true", help="cycle through pop3lab.fleet.MIX")
    kind.add_argument("--hostile", action="store_true", help="one endpoint per hostile behaviour")
    kind.add_argument(
        "--windows-mix",
        action="store_true",
        help="cycle through Exchange on every Windows Server it runs on (SChannel's TLS)",
    )
    parser.add_argument("--profile", choices=PROFILES, default="exchange2016")
    parser.add_argument("--login-type", choices=LOGIN_TYPES, default="SecureLogin")
    parser.add_argument("--no-ntlm", action="store_true", help="EnableGSSAPIAndNTLMAuth off")
    parser.add_argument(
        "--imap-login-type", choices=LOGIN_TYPES, help="Set-ImapSettings' (default: POP3's)"
    )
    parser.add_argument("--no-imap-ntlm", action="store_true", help="no NTLM on IMAP")
    parser.add_argument(
        "--submission-auth",
        default=",".join(SUBMISSION_AUTH),
        help=f"the connector's AuthMechanism, any of {','.join(SUBMISSION_AUTH)}",
    )
    parser.add_argument("--cert-kind", choices=(*KINDS, "none"), default="good")
    parser.add_argument("--cert-name", default="mail.example.test")
    parser.add_argument("--tls-min", default="TLSv1.2")
    parser.add_argument("--tls-max", default="TLSv1.3")
    parser.add_argument(
        "--windows", choices=sorted(WINDOWS), help="serve TLS as SChannel on this Windows Server"
    )
    parser.add_argument("--sslv2", action="store_true", help="answer SSL 2.0 (2008 R2 only)")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        type=_account,
        metavar="USER:PASSWORD",
        help="a mailbox that can log in (repeatable; lab passwords only, ps shows them)",
    )
    parser.add_argument("--manifest", type=Path, help="write a JSON list of endpoints here")
    parser.add_argument(
        "--ca-out", type=Path, help="write the test root CA here (for the scanner's --ca-file)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every endpoint")
    return parser.parse_args(argv)


def _account(text: str) -> tuple[str, str]:
    user, colon, password = text.partition(":")
    if not (user and colon and password):
        raise argparse.ArgumentTypeError(f"must be USER:PASSWORD, not {text!r}")
    return user, password


def fleet_from_args(args: argparse.Namespace) -> list[EndpointSpec]:
    """The endpoints the arguments describe, with IMAP and submission where asked."""
    if args.hostile:
        return hostile_fleet(args.base)
    fleet = _emulated_fleet(args)
    extra = (("imap", "imaps") if args.imap else ()) + (
        ("submission", "submissions") if args.submission else ()
    )
    return serving(fleet, extra) if extra else fleet


def _emulated_fleet(args: argparse.Namespace) -> list[EndpointSpec]:
    if args.mixed:
        return mixed_fleet(args.count, args.base)
    if args.windows_mix:
        return windows_fleet(args.count, args.base)
    config = EndpointConfig(
        profile=args.profile,
        login_type=args.login_type,
        ntlm=not args.no_ntlm,
        cert_kind=None if args.cert_kind == "none" else args.cert_kind,
        cert_name=args.cert_name,
        tls_versions=(args.tls_min, args.tls_max),
        accounts=tuple(args.account),
        windows=args.windows,
        sslv2=args.sslv2,
        imap_login_type=args.imap_login_type,
        imap_ntlm=False if args.no_imap_ntlm else None,
        submission_auth=args.submission_auth,
    )
    return uniform_fleet(args.count, args.base, config)


def ports_from_args(args: argparse.Namespace) -> dict[str, int]:
    """Lab.start's port arguments, one per service."""
    return {f"{service}_port": getattr(args, f"{service}_port") for service in SERVICES}


def raise_file_limit(needed: int) -> None:
    """Listeners per endpoint plus connections: lift the soft fd limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def report(bound: dict[str, BoundEndpoint], args: argparse.Namespace) -> None:
    """Say what is being served: a summary, optionally every endpoint, optionally a manifest."""
    entries = [describe(endpoint) for endpoint in bound.values()]
    if args.ca_out:
        # The test PKI is made afresh in each process, so clients need this process's root.
        args.ca_out.write_bytes(root_ca_pem())
    if args.manifest:
        args.manifest.write_text(json.dumps(entries, indent=1) + "\n")
    if args.verbose:
        for entry in entries:
            print(json.dumps(entry, separators=(",", ":")))
    first, last = entries[0]["address"], entries[-1]["address"]
    served = [service for service in SERVICES if entries[0][f"{service}_port"] is not None]
    ports = ", ".join(
        f"{service} {getattr(args, f'{service}_port') or 'ephemeral'}" for service in served
    )
    print(f"pop3lab: {len(entries)} endpoints {first}..{last}, ports: {ports}")
    print("ready", flush=True)


async def serve(args: argparse.Namespace) -> None:
    """Start the fleet, report it, and wait for SIGINT/SIGTERM."""
    fleet = fleet_from_args(args)
    raise_file_limit(len(SERVICES) * len(fleet) + 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Lab() as lab:
        bound = await lab.start(fleet, **ports_from_args(args))
        report(bound, args)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as error:
        print(f"pop3lab: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
