"""Every leaf certificate seen across the fleet, and where it is served."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.db.models import F, Q

import scanner
from popcompliance.compliance.models import Certificate, CertificateSighting
from popcompliance.inventory.models import Server

# "Last seen" times are refreshed at most this often, so unchanged rescans write nothing.
SEEN_GRAIN = timedelta(hours=1)


def due_refresh(last_seen_at: datetime, now: datetime) -> bool:
    """True when a "last seen" time is old enough to be worth rewriting."""
    return now - last_seen_at >= SEEN_GRAIN


def seen_at_last_scan() -> Q:
    """CertificateSighting filter: the sighting was seen at its server's latest scan. Sightings
    are refreshed at most every SEEN_GRAIN, so one older than that before the scan is gone."""
    return Q(last_seen_at__gte=F("server__last_scan_at") - SEEN_GRAIN)


def served_leaves(
    endpoints: Iterable[scanner.EndpointFacts],
) -> Iterator[tuple[str, int, scanner.CertificateFacts]]:
    """(address, port, leaf) for every TLS entry point that served a certificate: both doors
    of every protocol probed."""
    for endpoint in endpoints:
        for protocol in scanner.CLIENT_PROTOCOLS:
            cleartext, implicit = endpoint.doors(protocol)
            upgrade = cleartext.upgrade if cleartext else None
            doors = (
                (implicit.port, implicit.tls) if implicit else None,
                (cleartext.port, upgrade.tls if upgrade else None) if cleartext else None,
            )
            for port, tls in filter(None, doors):
                if tls is not None and tls.leaf is not None:
                    yield endpoint.address, port, tls.leaf


def remember_certificates(
    server: Server, endpoints: Iterable[scanner.EndpointFacts], now: datetime
) -> None:
    """Upsert the certificates a scan saw and their sightings on this server."""
    served = list(served_leaves(endpoints))
    if not served:
        return
    certificates = _certificates_by_fingerprint([leaf for _, _, leaf in served], now)
    sightings = {
        (s.certificate_id, s.address, s.port): s
        for s in CertificateSighting.objects.filter(server=server)
    }
    new, stale = [], []
    for address, port, leaf in served:
        certificate = certificates[leaf.fingerprint_sha256]
        sighting = sightings.get((certificate.pk, address, port))
        if sighting is None:
            new.append(
                CertificateSighting(
                    certificate=certificate,
                    server=server,
                    address=address,
                    port=port,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        elif due_refresh(sighting.last_seen_at, now):
            stale.append(sighting.pk)
    CertificateSighting.objects.bulk_create(new)
    if stale:
        CertificateSighting.objects.filter(pk__in=stale).update(last_seen_at=now)
        Certificate.objects.filter(sightings__pk__in=stale).update(last_seen_at=now)


def _certificates_by_fingerprint(
    leaves: list[scanner.CertificateFacts], now: datetime
) -> dict[str, Certificate]:
    fingerprints = {leaf.fingerprint_sha256 for leaf in leaves}
    known = {
        c.fingerprint_sha256: c
        for c in Certificate.objects.filter(fingerprint_sha256__in=fingerprints)
    }
    new = {leaf.fingerprint_sha256: leaf for leaf in leaves if leaf.fingerprint_sha256 not in known}
    if new:
        # One INSERT for every new certificate, then one read for their keys; a worker that
        # stored one of them meanwhile (the same certificate on another server) is no
        # conflict.
        Certificate.objects.bulk_create(
            [Certificate(fingerprint_sha256=fp, **_fields(leaf, now)) for fp, leaf in new.items()],
            ignore_conflicts=True,
        )
        known.update(
            (c.fingerprint_sha256, c)
            for c in Certificate.objects.filter(fingerprint_sha256__in=list(new))
        )
    return known


def _fields(leaf: scanner.CertificateFacts, now: datetime) -> dict[str, object]:
    return {
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "common_name": leaf.common_name or "",
        "dns_names": list(leaf.dns_names),
        "serial": leaf.serial,
        "not_before": leaf.not_before,
        "not_after": leaf.not_after,
        "key_type": leaf.key_type,
        "key_bits": leaf.key_bits,
        "signature_hash": leaf.signature_hash or "",
        "self_signed": leaf.self_signed,
        "pem": leaf.pem,
        "first_seen_at": now,
        "last_seen_at": now,
    }
