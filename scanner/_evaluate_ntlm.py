"""auth.ntlm_disclosure: what the NTLM challenges of an address's cleartext ports give away
that its public name does not already say."""

from __future__ import annotations

from scanner._evaluate_common import Context, Verdict, join_and
from scanner._facts import EndpointFacts, NtlmFacts
from scanner._ntlm import NtlmChallenge
from scanner._services import CLIENT_PROTOCOLS, PROTOCOL_BY_NAME

_NETBIOS = ("NetBIOS domain", "NetBIOS computer")
_NAMES = ("NTLM target name", *_NETBIOS, "DNS domain", "DNS computer", "DNS tree (forest)")


def check_ntlm_disclosure(endpoint: EndpointFacts, context: Context) -> Verdict:
    """Warn when a challenge names a host or domain beyond the service name (an internal AD
    domain, a NetBIOS name); pass when the names are the public ones; skip without NTLM."""
    if not endpoint.ntlm:
        unread = _unread_capabilities(endpoint)
        if unread:
            return "error", f"could not tell whether NTLM is offered: {unread}"
        return "skip", "no declared protocol offers NTLM before TLS"
    read = [facts for facts in endpoint.ntlm if facts.challenge is not None]
    failed = [facts for facts in endpoint.ntlm if facts.challenge is None]
    disclosed: dict[str, list[str]] = {}
    for facts in read:
        assert facts.challenge is not None
        for label, value in _new_names(facts.challenge, context.target.service_name).items():
            disclosed.setdefault(f"{label} {value}", []).append(_door(facts))
    if disclosed:
        names = join_and(disclosed)
        doors = join_and(sorted({door for found in disclosed.values() for door in found}))
        version = _version(read)
        return (
            "warn",
            f"AUTH NTLM before TLS on {doors} tells anyone {names}{version}",
        )
    if failed:
        facts = failed[0]
        return "error", f"could not read the NTLM challenge on {_door(facts)}: {facts.error}"
    doors = join_and([_door(facts) for facts in read])
    return "pass", f"the NTLM challenge on {doors} names nothing beyond the service name"


def _unread_capabilities(endpoint: EndpointFacts) -> str | None:
    """Why a declared cleartext port's capabilities, which say whether NTLM is offered, were
    never read (it timed out or was unreachable), or None."""
    for protocol in CLIENT_PROTOCOLS:
        cleartext, _ = endpoint.doors(protocol)
        if (
            cleartext is not None
            and cleartext.capabilities is None
            and cleartext.outcome
            in (
                "timeout",
                "unreachable",
            )
        ):
            return (
                f"port {cleartext.port} ({protocol.label}): {cleartext.error or cleartext.outcome}"
            )
    return None


def _door(facts: NtlmFacts) -> str:
    return f"port {facts.port} ({PROTOCOL_BY_NAME[facts.protocol].label})"


def _version(read: list[NtlmFacts]) -> str:
    versions = {f.challenge.os_version for f in read if f.challenge and f.challenge.os_version}
    return f", and its Windows build {join_and(sorted(versions))}" if versions else ""


def _new_names(challenge: NtlmChallenge, service_name: str | None) -> dict[str, str]:
    """The challenge's names that the service name does not already tell: a DNS name that is
    neither the service name nor one of its parent domains, a NetBIOS name that is none of its
    labels. The target name is either kind (Windows: the NetBIOS domain; Cyrus SASL: the
    server's host name), told apart by its dots."""
    public = (service_name or "").lower()
    labels = {label.upper() for label in public.split(".") if label}
    new: dict[str, str] = {}
    for label, value in challenge.disclosed.items():
        if label not in _NAMES:
            continue
        if label in _NETBIOS or (label == "NTLM target name" and "." not in value):
            known = value.upper() in labels
        else:
            name = value.lower().rstrip(".")
            known = name == public or ("." in name and public.endswith("." + name))
        if not known:
            new[label] = value
    return new
