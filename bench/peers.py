"""Benchmark: our TLS enumeration beside testssl.sh's and sslyze's, on the same endpoints.

Ten emulated Exchange servers (pop3lab's Windows mix: each Exchange release on each Windows
Server it runs on, with SChannel's default TLS, SSL 3.0, RC4 and 3DES included) have their
implicit-TLS port enumerated three times: by the scanner (every version, every suite, in
process), by testssl.sh (`-E`: each suite per protocol, one process per endpoint, all at once
like its `--parallel` mass mode) and by sslyze (its cipher suite commands for SSL 2.0 to
TLS 1.3, all endpoints in one run). Prints each tool's wall time and the ratios to ours, then
every suite the three do not all report, per endpoint and version, beside what the endpoint
serves by its configuration (pop3lab.schannel.served) and a hint of why the tool differs.

Only loopback is contacted. The peers get IP addresses and run in a mount namespace whose
/etc/nsswitch.conf looks host names up in /etc/hosts only and whose /etc/resolv.conf names a
loopback resolver where nothing listens: testssl.sh tests its OpenSSL by connecting to
`invalid.`, which would otherwise ask the machine's resolver. `--trace-connects` runs the
peers under strace and lists every address they connected to (the timings then include
strace's cost). testssl.sh is Debian's package (`scripts/system-deps.sh bench` installs it);
sslyze is installed once from PyPI into a venv of its own, var/bench-sslyze, never into the
project's.

    python bench/peers.py [--count 10] [--trace-connects]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import start_lab  # noqa: E402
from pop3lab.fleet import windows_fleet  # noqa: E402
from pop3lab.schannel import served  # noqa: E402
from scanner import PROTOCOLS, Settings, Target, TlsSupport  # noqa: E402
from scanner._session import AddressSession, LoginGate  # noqa: E402
from scanner._suites import BY_CODE, SSLV2_BY_CODE  # noqa: E402

BASE = "127.3.0.1"
POP3_PORT, POP3S_PORT = 11310, 19953
SERVICE_NAME = "mail.example.test"
TIMEOUT = 10.0
SSLYZE_VERSION = "6.3.1"
SSLYZE_VENV = ROOT / "var" / "bench-sslyze"
TESTSSL_CIPHERS = Path("/etc/testssl/cipher-mapping.txt")  # Debian's path
SSLYZE_COMMANDS = {
    "SSLv2": "ssl_2_0_cipher_suites",
    "SSLv3": "ssl_3_0_cipher_suites",
    "TLSv1": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}
TESTSSL_PROTOCOLS = {
    "ssl2": "SSLv2",
    "ssl3": "SSLv3",
    "tls1": "TLSv1",
    "tls1_1": "TLSv1.1",
    "tls1_2": "TLSv1.2",
    "tls1_3": "TLSv1.3",
}
TOOLS = ("ours", "testssl", "sslyze")

# Accepted suites by address, then version.
Found = dict[str, dict[str, set[str]]]


@dataclass
class Run:
    """One tool's enumeration of the fleet: what it found, how long it took, what went wrong,
    and (sslyze) the suites it tried and was refused, with the reason it gave."""

    found: Found
    seconds: float
    errors: list[str] = field(default_factory=list)
    refused: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # What the tool says about its own work (hellos sent, its own scan time).
    notes: list[str] = field(default_factory=list)
    lab_cpu: float = 0.0


def suite_name(code: int) -> str:
    table = SSLV2_BY_CODE if code > 0xFFFF else BY_CODE
    return table[code].name if code in table else f"0x{code:04X}"


# --- ours --------------------------------------------------------------------------------


def run_ours(addresses: Sequence[str]) -> Run:
    """The scanner's enumeration of every implicit-TLS port at once, in this process."""
    settings = Settings(timeout=TIMEOUT)

    async def one(address: str) -> TlsSupport:
        target = Target(address, service_name=SERVICE_NAME, pop3_port=POP3_PORT,
                        pop3s_port=POP3S_PORT)  # fmt: skip
        session = AddressSession(address, target, settings, LoginGate())
        return await session.tls_support(POP3S_PORT, upgrade=None)

    async def every() -> list[TlsSupport]:
        return await asyncio.gather(*(one(address) for address in addresses))

    started = time.perf_counter()
    supports = asyncio.run(every())
    run = Run({}, time.perf_counter() - started)
    for address, support in zip(addresses, supports, strict=True):
        run.found[address] = {v: set(names) for v, names in support.cipher_suites.items()}
        run.errors += [f"{address}: {support.error}"] if support.error else []
    hellos = sum(support.hellos for support in supports)
    slowest = max(support.duration_ms for support in supports)
    run.notes.append(f"{hellos} hellos, one connection each; slowest endpoint {slowest} ms")
    return run


def cpu_seconds(pid: int) -> float:
    """The user and system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_run(addresses: Sequence[str], lab_pid: int) -> Run:
    """The median of three runs: below a second, one run's time is mostly the noise of
    whatever else the two cores are doing."""
    runs = [measured(lab_pid, lambda: run_ours(addresses)) for _ in range(3)]
    runs.sort(key=lambda run: run.seconds)
    runs[1].notes.append(f"median of 3 runs ({runs[0].seconds:.2f}-{runs[2].seconds:.2f} s)")
    return runs[1]


def measured(lab_pid: int, job: Callable[[], Run]) -> Run:
    """`job`'s run, with the emulator's CPU time spent meanwhile."""
    cpu = cpu_seconds(lab_pid)
    run = job()
    run.lab_cpu = cpu_seconds(lab_pid) - cpu
    return run


# --- the peers' sandbox ------------------------------------------------------------------


def private_resolver(directory: Path) -> list[str]:
    """A command prefix that runs a program where host names come from /etc/hosts only and
    the DNS resolver is a loopback address where nothing listens (see the module doc)."""
    nsswitch = directory / "nsswitch.conf"
    original = Path("/etc/nsswitch.conf").read_text()
    nsswitch.write_text(re.sub(r"(?m)^hosts:.*$", "hosts: files", original))
    resolv = directory / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    binds = " && ".join(
        f"mount --bind {source} {path}"
        for source, path in ((nsswitch, "/etc/nsswitch.conf"), (resolv, "/etc/resolv.conf"))
    )
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ["unshare", *user, "--mount", "sh", "-c", f'{binds} && exec "$@"', "sh"]


def traced(command: list[str], trace: Path | None) -> list[str]:
    if trace is None:
        return command
    return ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *command]


def run_timed(commands: list[list[str]], log: Path) -> float:
    """Run the commands side by side; the seconds until the last one ended."""
    started = time.perf_counter()
    with log.open("ab") as output:
        processes = [
            subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
            for command in commands
        ]
        statuses = [process.wait() for process in processes]
    seconds = time.perf_counter() - started
    if any(statuses):
        print(f"  exit statuses {statuses}; output in {log}")
    return seconds


# --- testssl.sh --------------------------------------------------------------------------


def run_testssl(addresses: Sequence[str], work: Path, sandbox: list[str], trace: bool) -> Run:
    """`testssl -E` on each endpoint, all at once, each with its JSON findings file."""
    commands = []
    for address in addresses:
        command = [
            "testssl", "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
            "--ip", address, "--jsonfile", str(work / f"testssl-{address}.json"),
            "-E", f"{SERVICE_NAME}:{POP3S_PORT}",
        ]  # fmt: skip
        trace_file = work / f"strace-testssl-{address}.txt" if trace else None
        commands.append(traced([*sandbox, *command], trace_file))
    seconds = run_timed(commands, work / "testssl.log")
    run = Run({}, seconds)
    own_times = []
    for address in addresses:
        findings = json.loads((work / f"testssl-{address}.json").read_text())
        run.found[address] = testssl_suites(findings)
        run.errors += [f"{address}: {f['finding']}" for f in findings if f["severity"] == "FATAL"]
        own_times += [int(f["finding"]) for f in findings if f["id"] == "scanTime"]
    if own_times:
        run.notes.append(f"its scanTime per endpoint {min(own_times)}-{max(own_times)} s")
    return run


def testssl_suites(findings: list[dict[str, str]]) -> dict[str, set[str]]:
    """Its findings `cipher-<protocol>_x<hex code>`, by IANA name through the code."""
    suites: dict[str, set[str]] = collections.defaultdict(set)
    for finding in findings:
        match = re.fullmatch(r"cipher-(\w+?)_x([0-9a-f]+)", finding["id"])
        if match:
            protocol, code = match.groups()
            suites[TESTSSL_PROTOCOLS[protocol]].add(suite_name(int(code, 16)))
    return dict(suites)


def testssl_knows() -> set[str] | None:
    """The suites testssl.sh can offer, by IANA name (None when its list is not found)."""
    if not TESTSSL_CIPHERS.exists():
        return None
    names = set()
    for line in TESTSSL_CIPHERS.read_text().splitlines():
        match = re.match(r"\s*((?:0x[0-9A-F]{2},?)+)\s", line)
        if match:
            code = int("".join(part[2:] for part in match.group(1).split(",") if part), 16)
            names.add(suite_name(code))
    return names


# --- sslyze ------------------------------------------------------------------------------


def sslyze_binary() -> Path:
    """sslyze in its own venv, installed on first use (the only step that leaves loopback)."""
    binary = SSLYZE_VENV / "bin" / "sslyze"
    wanted = f"sslyze=={SSLYZE_VERSION}"
    if binary.exists():
        pip = [str(SSLYZE_VENV / "bin" / "pip"), "freeze"]
        if wanted in subprocess.run(pip, capture_output=True, text=True).stdout.split():
            return binary
    print(f"installing {wanted} into {SSLYZE_VENV} (once)")
    SSLYZE_VENV.parent.mkdir(mode=0o700, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(SSLYZE_VENV)], check=True)
    pip = [str(SSLYZE_VENV / "bin" / "pip"), "install", "--quiet", wanted]
    subprocess.run(pip, check=True)
    return binary


def run_sslyze(addresses: Sequence[str], work: Path, sandbox: list[str], trace: bool) -> Run:
    """One sslyze run over every endpoint, with each version's cipher suite command."""
    output = work / "sslyze.json"
    command = [
        str(sslyze_binary()), "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2",
        "--tlsv1_3", "--mozilla_config", "disable", "--quiet", "--json_out", str(output),
        *(f"{SERVICE_NAME}:{POP3S_PORT}{{{address}}}" for address in addresses),
    ]  # fmt: skip
    trace_file = work / "strace-sslyze.txt" if trace else None
    seconds = run_timed([traced([*sandbox, *command], trace_file)], work / "sslyze.log")
    run = Run({}, seconds)
    document = json.loads(output.read_text())
    started, completed = (
        datetime.fromisoformat(document[key].replace("Z", "+00:00"))
        for key in ("date_scans_started", "date_scans_completed")
    )
    own = (completed - started).total_seconds()
    run.notes.append(f"its own scan {own:.2f} s, the rest is start-up")
    for server in document["server_scan_results"]:
        address = server["server_location"]["ip_address"]
        run.found[address] = {}
        if server["scan_status"] != "COMPLETED":
            run.errors.append(f"{address}: {server['connectivity_error_trace']}")
            continue
        for version, name in SSLYZE_COMMANDS.items():
            attempt = server["scan_result"][name]
            if attempt["status"] != "COMPLETED":
                run.errors.append(f"{address} {version}: {attempt['error_reason']}")
                continue
            result = attempt["result"]
            accepted = {s["cipher_suite"]["name"] for s in result["accepted_cipher_suites"]}
            if accepted:
                run.found[address][version] = accepted
            for rejected in result["rejected_cipher_suites"]:
                key = (address, version, rejected["cipher_suite"]["name"])
                run.refused[key] = rejected["error_message"]
    return run


# --- comparing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    address: str
    endpoint: str
    version: str
    suite: str
    served: bool
    found_by: tuple[str, ...]


def disagreements(fleet: dict[str, str], truth: Found, runs: dict[str, Run]) -> list[Disagreement]:
    """Every (endpoint, version, suite) that some tool or the configuration names and not all
    of them do."""
    found = []
    for address, endpoint in fleet.items():
        for version in PROTOCOLS:
            by_tool = {tool: runs[tool].found[address].get(version, set()) for tool in TOOLS}
            served_here = truth[address].get(version, set())
            for suite in sorted(served_here.union(*by_tool.values())):
                finders = tuple(tool for tool in TOOLS if suite in by_tool[tool])
                is_served = suite in served_here
                if finders != TOOLS or not is_served:
                    found.append(
                        Disagreement(address, endpoint, version, suite, is_served, finders)
                    )
    return found


def why(item: Disagreement, runs: dict[str, Run], testssl_list: set[str] | None) -> str:
    """What the tools' own output says about a suite some of them missed or invented."""
    if not item.served:
        return f"not served by the configuration, yet found by {', '.join(item.found_by)}"
    reasons = []
    for tool in TOOLS:
        if tool in item.found_by:
            continue
        if tool == "sslyze":
            refusal = runs["sslyze"].refused.get((item.address, item.version, item.suite))
            reasons.append(
                f"sslyze tried it: {refusal}" if refusal else "sslyze never offers this suite"
            )
        elif tool == "testssl":
            known = testssl_list is None or item.suite in testssl_list
            reasons.append(
                "testssl offered it but did not see it accepted"
                if known
                else "testssl has no such suite in its list"
            )
        else:
            reasons.append("our scanner missed it")
    return "; ".join(reasons)


def print_disagreements(
    items: list[Disagreement], runs: dict[str, Run], testssl_list: set[str] | None
) -> None:
    print(f"disagreements: {len(items)} (endpoint, version, suite) not reported by all three")
    for item in items:
        missing = [tool for tool in TOOLS if tool not in item.found_by]
        print(
            f"  {item.address} ({item.endpoint}) {item.version} {item.suite}: "
            f"found by {', '.join(item.found_by) or 'none'}, missed by {', '.join(missing)} "
            f"-- {why(item, runs, testssl_list)}"
        )


def print_times(runs: dict[str, Run], count: int) -> None:
    ours = runs["ours"].seconds
    goals = {"testssl": 50, "sslyze": 20}
    for tool in TOOLS:
        run = runs[tool]
        suites = sum(len(names) for versions in run.found.values() for names in versions.values())
        line = f"  {tool:8} {run.seconds:7.2f} s  ({suites} accepted suites over {count} endpoints)"
        if tool in goals:
            line += f"  {run.seconds / ours:6.1f}x ours (goal >= {goals[tool]}x)"
        print(line)
        for note in run.notes:
            print(f"           {note}")
        print(f"           the emulator used {run.lab_cpu:.2f} s of CPU meanwhile")
        for error in run.errors:
            print(f"           error: {error}")


def print_connections(work: Path) -> None:
    """Every address the peers connected to, from their strace logs; anything off loopback,
    or to a DNS port, is flagged."""
    pattern = re.compile(
        r'htons\((\d+)\), (?:sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")'
        r'|sun_path="([^"]+)"'
    )
    for tool in ("testssl", "sslyze"):
        seen: collections.Counter[str] = collections.Counter()
        for trace in work.glob(f"strace-{tool}*.txt"):
            for port, ipv4, ipv6, path in pattern.findall(trace.read_text()):
                seen[path or f"{ipv4 or ipv6} port {port}"] += 1
        print(f"  {tool}: {sum(seen.values())} connect() calls")
        for destination, times in sorted(seen.items()):
            outside = not (destination.startswith(("127.", "::1 ", "/")))
            flag = "  <-- NOT LOOPBACK" if outside else ""
            flag += "  <-- DNS" if destination.endswith(" port 53") else ""
            print(f"    {times:5} x {destination}{flag}")


# --- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--trace-connects", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the tools' output files")
    args = parser.parse_args()
    if shutil.which("testssl") is None:
        raise SystemExit("testssl.sh is missing: run scripts/system-deps.sh bench (as root)")
    sslyze_binary()

    specs = windows_fleet(args.count, BASE)
    fleet = {address: f"{config.profile} on {config.windows}" for address, config in specs}
    truth = {address: {v: set(s) for v, s in served(config.tls_profile).items()}
             for address, config in specs if config.tls_profile}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="popc-peers-"))
    sandbox = private_resolver(work)
    lab = start_lab(
        "--windows-mix", "--count", str(args.count), "--base", BASE,
        "--pop3-port", str(POP3_PORT), "--pop3s-port", str(POP3S_PORT),
    )  # fmt: skip
    try:
        addresses = list(fleet)
        # A first pass builds the emulator's TLS contexts (cached per choice), so no tool
        # pays for them; it is printed, not compared.
        warm_up = run_ours(addresses)
        runs = {
            "ours": median_run(addresses, lab.pid),
            "testssl": measured(
                lab.pid, lambda: run_testssl(addresses, work, sandbox, args.trace_connects)
            ),
            "sslyze": measured(
                lab.pid, lambda: run_sslyze(addresses, work, sandbox, args.trace_connects)
            ),
        }
    finally:
        lab.terminate()
        lab.wait()

    print(f"endpoints: {args.count} (Exchange on Windows Server, implicit TLS, {BASE}...)")
    print(f"wall time, all endpoints (ours {warm_up.seconds:.2f} s on a cold emulator first):")
    print_times(runs, args.count)
    testssl_list = testssl_knows()
    print_disagreements(disagreements(fleet, truth, runs), runs, testssl_list)
    if args.trace_connects:
        print("connections of the peers:")
        print_connections(work)
    if args.keep:
        print(f"the tools' output: {work}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
