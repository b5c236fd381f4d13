"""Ground truth for cipher suite enumeration: which suites a running server accepts, per protocol
version, as GnuTLS's own client (`gnutls-cli`, Debian package gnutls-bin) finds them.

One handshake per (version, suite) candidate, each with a priority string that offers exactly
that version and that suite (`NONE:+VERS-TLS1.2:+<cipher>:+<MAC>:+<key exchange>:...`), so the
answer never depends on which suite a server prefers. The candidates are run concurrently.

Coverage: only what this GnuTLS can offer can be checked. Left out are
- protocol versions the library does not implement (Debian's GnuTLS has no SSL 3.0 and no
  SSL 2.0), and suites it does not implement (no DES, IDEA, SEED, ARIA, EXPORT, static DH or
  ECDH, Kerberos...);
- PSK and SRP suites, which gnutls-cli cannot complete without credentials it is not given.
`checkable()` says exactly which (version, suite) pairs are covered. Against a GnuTLS server the
gap is small: such a server cannot negotiate what its own library does not implement either.

Suites are named as IANA does, through the code `gnutls-cli --list` prints and
scanner._suites.BY_CODE; versions as the scanner names them ("TLSv1", "TLSv1.2"...).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from scanner._suites import suite_name

NOT_INSTALLED = "gnutls-cli is not installed: apt-get install gnutls-bin (make test does this)"
# The scanner's version names and GnuTLS's, both as priority tokens and as printed in
# `--list`'s minimum-version column and a session's description.
VERSION_TOKENS = {
    "SSLv3": "VERS-SSL3.0",
    "TLSv1": "VERS-TLS1.0",
    "TLSv1.1": "VERS-TLS1.1",
    "TLSv1.2": "VERS-TLS1.2",
    "TLSv1.3": "VERS-TLS1.3",
}
_GNUTLS_NAMES = {token.removeprefix("VERS-"): name for name, token in VERSION_TOKENS.items()}
# Key exchanges gnutls-cli cannot complete unless given a PSK or SRP user name and secret.
UNCHECKABLE_KEY_EXCHANGES = frozenset(
    {"PSK", "RSA-PSK", "DHE-PSK", "ECDHE-PSK", "SRP", "SRP-RSA", "SRP-DSS"}
)
# What every priority string adds: any signature algorithm, group and (null) compression, so
# only the version and the suite decide.
_REST = "+COMP-NULL:+SIGN-ALL:+GROUP-ALL:+CTYPE-X509"
# The environment of every gnutls-cli: no system-wide priority file can narrow what it offers.
ENVIRONMENT = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "GNUTLS_SYSTEM_PRIORITY_FILE": "/dev/null",
}
# Seconds one handshake may take; the STLS dialogue included.
HANDSHAKE_TIMEOUT = 10.0
WORKERS = 8

_SUITE_LINE = re.compile(r"^(TLS_\w+)\s+0x([0-9a-f]{2}), 0x([0-9a-f]{2})\s+(\S+)$", re.MULTILINE)
_DESCRIPTION = re.compile(r"^- Description: \(([A-Z0-9.]+)-", re.MULTILINE)
# Lines of `gnutls-cli --list` naming the library's tokens, by what a priority string selects.
_DIMENSIONS = {"cipher": "Ciphers", "mac": "MACs", "kx": "Key exchange algorithms"}


class TruthError(RuntimeError):
    """gnutls-cli could not say whether a suite is accepted (no connection, STLS refused...);
    the message quotes what it printed."""


@dataclass(frozen=True)
class Candidate:
    """One handshake to try: `suite` (IANA name) on `version` (the scanner's name), offered
    alone by the GnuTLS priority string `priority`."""

    version: str
    suite: str
    priority: str


def accepted_suites(
    host: str, port: int, starttls: bool = False, workers: int = WORKERS
) -> dict[str, frozenset[str]]:
    """The suites the server on `host`:`port` accepts, by version, only versions with any:
    {"TLSv1": {"TLS_RSA_WITH_RC4_128_SHA", ...}, ...}. POP3 STLS first when `starttls`.
    TruthError when a handshake could not be tried."""
    with ThreadPoolExecutor(workers) as pool:
        verdicts = pool.map(lambda c: _accepts(c, host, port, starttls), candidates())
        accepted = [candidate for candidate, ok in zip(candidates(), verdicts, strict=True) if ok]
    return _by_version(accepted)


def checkable() -> dict[str, frozenset[str]]:
    """Every suite accepted_suites() tries, by version: what its answer covers."""
    return _by_version(candidates())


def _by_version(candidates: Iterable[Candidate]) -> dict[str, frozenset[str]]:
    suites: dict[str, set[str]] = defaultdict(set)
    for candidate in candidates:
        suites[candidate.version].add(candidate.suite)
    return {version: frozenset(names) for version, names in suites.items()}


@functools.cache
def candidates() -> tuple[Candidate, ...]:
    """Every (version, suite) this GnuTLS can offer alone and complete without credentials."""
    tokens = _library_tokens()
    versions = [v for v, token in VERSION_TOKENS.items() if token in tokens["Protocols"]]
    wide = {dimension: tokens[heading] for dimension, heading in _DIMENSIONS.items()}
    wide["kx"] = [token for token in wide["kx"] if token not in UNCHECKABLE_KEY_EXCHANGES]
    # A priority with the NULL cipher leaves TLS 1.3 out, so its suites need a second look.
    without_null = wide | {"cipher": [token for token in wide["cipher"] if token != "NULL"]}
    suites = _suite_tokens(without_null) | _suite_tokens(wide)
    found = []
    for code, (minimum, choice) in sorted(suites.items()):
        for version in _versions_of(minimum, versions):
            priority = _priority(version, choice)
            _check_offers_only(priority, code)
            found.append(Candidate(version, suite_name(code), priority))
    return tuple(found)


def _versions_of(minimum: str, versions: list[str]) -> list[str]:
    """The versions that can carry a suite GnuTLS lists with `minimum`: TLS 1.3's suites only
    TLS 1.3, the others every version from their minimum up to TLS 1.2."""
    if minimum == "TLSv1.3":
        return ["TLSv1.3"] if "TLSv1.3" in versions else []
    older = [v for v in versions if v != "TLSv1.3"]
    return older[older.index(minimum) :] if minimum in older else []


def _priority(version: str, choice: dict[str, str | None]) -> str:
    chosen = [token for token in (choice["cipher"], choice["mac"], choice["kx"]) if token]
    return ":".join(["NONE", f"+{VERSION_TOKENS[version]}", *(f"+{t}" for t in chosen), _REST])


def _suite_tokens(wide: dict[str, list[str]]) -> dict[int, tuple[str, dict[str, str | None]]]:
    """Each suite `wide` lists: its code → (its minimum version, its cipher, MAC and key
    exchange tokens).

    A suite's token in each dimension is the one whose priority lists it, every other
    dimension left as wide. TLS 1.3 suites name no key exchange (they are listed whatever
    the key exchange is), so theirs is None."""
    every = _listed(_wide_priority(wide))
    choice: dict[int, dict[str, str | None]] = {code: {} for code in every}
    for dimension, names in wide.items():
        for token in names:
            narrowed = _listed(_wide_priority(wide | {dimension: [token]}))
            for code, minimum in narrowed.items():
                if code in choice and (dimension != "kx" or minimum != "TLSv1.3"):
                    choice[code].setdefault(dimension, token)
    return {code: (every[code], {"kx": None} | choice[code]) for code in every}


def _wide_priority(tokens: dict[str, list[str]]) -> str:
    versions = [f"+{token}" for token in VERSION_TOKENS.values() if token != "VERS-SSL3.0"]
    chosen = [f"+{token}" for names in tokens.values() for token in names]
    return ":".join(["NONE", *versions, *chosen, _REST])


def _check_offers_only(priority: str, code: int) -> None:
    """A candidate's priority must offer its suite and no other: checked, not assumed."""
    listed = set(_listed(priority))
    if listed != {code}:
        named = ", ".join(suite_name(c) for c in sorted(listed)) or "nothing"
        raise TruthError(f"{priority} offers {named}, not just {suite_name(code)}")


@functools.cache
def _library_tokens() -> dict[str, list[str]]:
    """The tokens this GnuTLS knows, by the heading `gnutls-cli --list` gives them."""
    text = _run([_binary(), "--list"])
    lines = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return {
        heading: lines.get(heading, "").split(", ")
        for heading in (*_DIMENSIONS.values(), "Protocols")
    }


def _listed(priority: str) -> dict[int, str]:
    """The suites `priority` selects: code → the oldest version (scanner's name) for it.
    (gnutls-cli fails when a priority selects no suite: that lists nothing.)"""
    text = _run([_binary(), "--list", "--priority", priority], check=False)
    return {
        int(high + low, 16): _GNUTLS_NAMES[minimum]
        for _name, high, low, minimum in _SUITE_LINE.findall(text)
    }


def _accepts(candidate: Candidate, host: str, port: int, starttls: bool) -> bool:
    """Whether one handshake offering only `candidate` completes."""
    command = [_binary(), "--insecure", "--priority", candidate.priority, "-p", str(port), host]
    if starttls:
        command.append("--starttls-proto=pop3")
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=ENVIRONMENT,
            timeout=HANDSHAKE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        raise TruthError(f"{candidate}: no answer within {HANDSHAKE_TIMEOUT:g} s") from error
    return _verdict(candidate, result)


def _verdict(candidate: Candidate, result: subprocess.CompletedProcess[str]) -> bool:
    """Accepted, refused, or TruthError when gnutls-cli never got to the handshake."""
    said = (result.stdout + result.stderr).strip()
    if result.returncode == 0 and "- Handshake was completed" in result.stdout:
        version = _DESCRIPTION.search(result.stdout)
        if version is None or _GNUTLS_NAMES.get(version.group(1)) != candidate.version:
            raise TruthError(f"{candidate}: negotiated something else:\n{said[-2000:]}")
        return True
    broken_off = ("Could not connect", "error receiving", "error sending", "Cannot resolve")
    if "*** " in result.stderr and not any(text in said for text in broken_off):
        return False
    raise TruthError(f"{candidate}: gnutls-cli said (exit {result.returncode}):\n{said[-2000:]}")


def _run(command: list[str], check: bool = True) -> str:
    return subprocess.run(
        command, capture_output=True, text=True, check=check, env=ENVIRONMENT, timeout=30
    ).stdout


@functools.cache
def _binary() -> str:
    binary = shutil.which("gnutls-cli")
    if binary is None:
        raise TruthError(NOT_INSTALLED)
    return binary
