"""tls.protocols, tls.ciphers and cert.strength judged by each TLS profile: facts built by hand
in, verdicts out, at every profile's boundaries. No network."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scanner import PROFILES, PROTOCOL_LABEL, TlsProfile, profile_named
from scanner._facts import StlsFacts, TlsSupport, compliance
from scanner._suites import BY_NAME, PROTOCOLS
from scanner._target import Policy
from tests.test_evaluate import (
    MODERN_SUITES,
    POLICY,
    check,
    checks,
    endpoint,
    pop3,
    pop3s,
    support,
    tls,
)

SWEET32 = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"


def under(profile: str) -> Policy:
    return replace(POLICY, tls_profile=profile)


def only_995_accepting(suites: dict[str, tuple[str, ...]], **changes: object) -> object:
    """An address whose port 995 accepts exactly `suites`; port 110 is closed."""
    return endpoint(
        pop3=pop3(outcome="closed", stls=None), pop3s=pop3s(support=support(suites, **changes))
    )


def only_995_accepting_support(accepting: TlsSupport) -> object:
    return endpoint(pop3=pop3(outcome="closed", stls=None), pop3s=pop3s(support=accepting))


def recommended_at(profile: TlsProfile, protocol: str) -> tuple[str, ...]:
    """Suites the profile is happy with that `protocol` can negotiate."""
    if profile.recommended is None:
        return MODERN_SUITES["TLSv1.3" if protocol == "TLSv1.3" else "TLSv1.2"]
    rank = PROTOCOLS.index(protocol)
    return tuple(
        sorted(
            name
            for name in profile.recommended
            if BY_NAME[name].tls13 == (protocol == "TLSv1.3")
            and PROTOCOLS.index(BY_NAME[name].oldest_protocol) <= rank
            and not BY_NAME[name].weaknesses & (profile.forbidden | profile.discouraged)
        )
    )


def clean_for(profile: TlsProfile, **changes: object) -> object:
    """An address accepting every version the profile allows, with suites it recommends."""
    suites = {protocol: recommended_at(profile, protocol) for protocol in profile.versions}
    return only_995_accepting({k: v for k, v in suites.items() if v}, **changes)


# --- the default profile -----------------------------------------------------------------------


def test_a_tls12_only_server_that_accepts_3des_is_not_compliant_by_default() -> None:
    facts = only_995_accepting({"TLSv1.2": (*MODERN_SUITES["TLSv1.2"], SWEET32)})
    results = checks(facts)
    assert results["tls.protocols"].status == "pass"
    result = results["tls.ciphers"]
    assert result.status == "fail"
    assert f"3DES ({SWEET32} on TLS 1.2)" in result.summary
    assert "profile Mozilla intermediate" in result.summary
    assert "Disable-TlsCipherSuite" in result.remediation
    assert compliance(tuple(results.values())) is False


def test_the_summary_names_every_entry_point_that_accepts_the_suite() -> None:
    weak = support({"TLSv1": ("TLS_RSA_WITH_RC4_128_SHA",), **MODERN_SUITES})
    facts = endpoint(
        pop3=pop3(stls=StlsFacts("ok", tls=tls(), support=weak)), pop3s=pop3s(support=weak)
    )
    summary = check("tls.ciphers", facts).summary
    assert "RC4 (TLS_RSA_WITH_RC4_128_SHA on TLS 1.0)" in summary
    assert "on 995 and 110 after STLS" in summary


def test_sslv2_and_sslv3_are_judged_like_any_version() -> None:
    facts = only_995_accepting(
        {"SSLv2": ("SSL_CK_RC4_128_WITH_MD5",), "SSLv3": (SWEET32,), **MODERN_SUITES}
    )
    results = checks(facts)
    assert results["tls.protocols"].status == "fail"
    assert "SSLv2 and SSLv3 accepted" in results["tls.protocols"].summary
    ciphers = results["tls.ciphers"].summary
    assert "RC4 (SSL_CK_RC4_128_WITH_MD5 on SSLv2)" in ciphers
    assert "MD5 MAC" in ciphers


def test_static_rsa_and_cbc_warn_under_the_default_profile() -> None:
    facts = only_995_accepting(
        {
            "TLSv1.2": (
                *MODERN_SUITES["TLSv1.2"],
                "TLS_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            )
        }
    )
    result = check("tls.ciphers", facts)
    assert result.status == "warn"
    assert "no forward secrecy (TLS_RSA_WITH_AES_128_GCM_SHA256 on TLS 1.2)" in result.summary
    assert "CBC mode (TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA on TLS 1.2)" in result.summary


def test_a_suite_outside_the_profiles_list_warns() -> None:
    aria = "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"
    result = check("tls.ciphers", only_995_accepting({"TLSv1.2": (aria,)}))
    assert result.status == "warn"
    assert f"suites outside its list ({aria} on TLS 1.2)" in result.summary


def test_a_version_that_could_not_be_tested_keeps_both_checks_from_passing() -> None:
    versions = dict(support().accepted_versions) | {"SSLv3": None}
    facts = only_995_accepting(
        MODERN_SUITES, accepted_versions=versions, error="SSLv3 hello: timed out"
    )
    results = checks(facts)
    assert results["tls.protocols"].status == "error"
    assert "could not test SSLv3: SSLv3 hello: timed out" in results["tls.protocols"].summary
    assert results["tls.ciphers"].status == "error"


def test_a_forbidden_suite_fails_even_when_a_version_is_untested() -> None:
    versions = dict(support().accepted_versions) | {"SSLv3": None}
    rc4 = {"TLSv1.2": ("TLS_RSA_WITH_RC4_128_SHA",)}
    assert check("tls.ciphers", only_995_accepting(rc4, accepted_versions=versions)).status == (
        "fail"
    )


def test_without_a_tls_entry_point_both_checks_are_skipped() -> None:
    facts = endpoint(
        pop3=pop3(outcome="closed", stls=None),
        pop3s=pop3s(outcome="closed", tls=None, greeting=None, support=None),
    )
    results = checks(facts)
    assert (results["tls.protocols"].status, results["tls.ciphers"].status) == ("skip", "skip")


def test_a_session_whose_support_was_not_tested_is_an_error_not_a_skip() -> None:
    facts = endpoint(pop3=pop3(outcome="closed", stls=None), pop3s=pop3s(support=None))
    assert check("tls.ciphers", facts).status == "error"


# --- every profile at its boundaries -----------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.name)
def test_every_profile_passes_a_server_it_describes(profile: TlsProfile) -> None:
    results = checks(clean_for(profile, dh_bits=profile.min_dh_bits), policy=under(profile.name))
    for check_id in ("tls.protocols", "tls.ciphers"):
        assert results[check_id].status == "pass", results[check_id].summary
        assert f"profile {profile.title}" in results[check_id].summary


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.name)
def test_every_profile_fails_the_version_just_below_its_oldest(profile: TlsProfile) -> None:
    below = PROTOCOLS[PROTOCOLS.index(profile.versions[0]) - 1]
    old_suite = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
    suites = MODERN_SUITES["TLSv1.2"] if below == "TLSv1.2" else (old_suite,)
    accepting = clean_for(profile).pop3s.support.cipher_suites  # type: ignore[attr-defined]
    result = check(
        "tls.protocols",
        only_995_accepting({**accepting, below: suites}),
        policy=under(profile.name),
    )
    assert result.status == "fail"
    assert f"{PROTOCOL_LABEL[below]} accepted" in result.summary


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.name)
def test_every_profile_fails_a_dh_prime_one_bit_short(profile: TlsProfile) -> None:
    facts = clean_for(profile, dh_bits=profile.min_dh_bits - 1)
    result = check("tls.ciphers", facts, policy=under(profile.name))
    assert result.status == "fail"
    assert f"{profile.min_dh_bits - 1}-bit DH prime" in result.summary


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.name)
@pytest.mark.parametrize(
    "suite",
    [
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_DES_CBC_SHA",
        "TLS_RSA_WITH_NULL_SHA256",
        "TLS_RSA_EXPORT_WITH_RC4_40_MD5",
        "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
    ],
)
def test_every_profile_forbids_broken_suites(profile: TlsProfile, suite: str) -> None:
    facts = only_995_accepting({"TLSv1.2": (suite,)})
    assert check("tls.ciphers", facts, policy=under(profile.name)).status == "fail"


@pytest.mark.parametrize(
    ("profile", "status"),
    [
        ("mozilla-old", "pass"),
        ("mozilla-intermediate", "fail"),
        ("nist-sp800-52r2", "fail"),
        ("bsi-tr-02102-2", "fail"),
        ("pci-dss-4", "fail"),
    ],
)
def test_3des_is_allowed_only_for_legacy_clients(profile: str, status: str) -> None:
    facts = only_995_accepting({"TLSv1.2": (*MODERN_SUITES["TLSv1.2"], SWEET32)})
    assert check("tls.ciphers", facts, policy=under(profile)).status == status


def test_mozilla_modern_wants_tls13_only() -> None:
    policy = under("mozilla-modern")
    assert check("tls.protocols", only_995_accepting(MODERN_SUITES), policy=policy).status == (
        "fail"
    )
    tls13 = {"TLSv1.3": MODERN_SUITES["TLSv1.3"]}
    assert check("tls.protocols", only_995_accepting(tls13), policy=policy).status == "pass"


def test_nist_accepts_ecdhe_cbc_that_mozilla_intermediate_only_tolerates() -> None:
    cbc = {"TLSv1.2": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",)}
    assert check(
        "tls.ciphers", only_995_accepting(cbc), policy=under("nist-sp800-52r2")
    ).status == ("pass")
    assert check("tls.ciphers", only_995_accepting(cbc)).status == "warn"


def test_pci_dss_only_forbids_what_is_not_strong_cryptography() -> None:
    static = {"TLSv1.2": ("TLS_RSA_WITH_AES_128_CBC_SHA",)}
    assert check("tls.ciphers", only_995_accepting(static), policy=under("pci-dss-4")).status == (
        "pass"
    )


def test_bsi_wants_3000_bit_rsa_keys_where_mozilla_wants_2048() -> None:
    bsi = check("cert.strength", policy=under("bsi-tr-02102-2"))
    assert bsi.status == "fail"
    assert "RSA 2048-bit key (BSI TR-02102-2 requires 3000 bits)" in bsi.summary
    assert check("cert.strength").status == "pass"


def test_an_unknown_profile_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="mozilla-intermediate"):
        Policy(tls_profile="mozilla-medium")


def test_a_profile_naming_a_suite_outside_the_registry_is_refused() -> None:
    with pytest.raises(ValueError, match="TLS_MADE_UP"):
        replace(profile_named("pci-dss-4"), recommended=frozenset({"TLS_MADE_UP"}))


def test_a_listing_cut_short_is_judged_by_what_it_showed_and_never_passes() -> None:
    # The server broke off while TLS 1.0's suites were being listed: TLS 1.0 is accepted
    # (it chose a suite), but there may be more suites than the one seen.
    versions = dict(support().accepted_versions) | {"TLSv1": None}
    cut = {**MODERN_SUITES, "TLSv1": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",)}
    results = checks(only_995_accepting(cut, accepted_versions=versions, error="broke off"))
    assert results["tls.protocols"].status == "fail"
    assert "TLS 1.0 accepted" in results["tls.protocols"].summary
    assert results["tls.ciphers"].status == "error"
    clean = {**MODERN_SUITES, "TLSv1.3": MODERN_SUITES["TLSv1.3"][:1]}
    versions = dict(support().accepted_versions) | {"TLSv1.3": None}
    partial = only_995_accepting(clean, accepted_versions=versions, error="broke off")
    assert checks(partial)["tls.protocols"].status == "pass"
    assert checks(partial)["tls.ciphers"].status == "error"


def test_accepted_dhe_suites_whose_prime_was_not_read_keep_tls_ciphers_from_passing() -> None:
    dhe = {**MODERN_SUITES, "TLSv1.2": ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",)}
    result = check("tls.ciphers", only_995_accepting(dhe, dh_bits=None))
    assert result.status == "error"
    assert "the size of their prime was not read" in result.summary
    assert check("tls.ciphers", only_995_accepting(dhe, dh_bits=2048)).status == "pass"


def test_64_bit_block_ciphers_are_forbidden_like_3des() -> None:
    idea = {"TLSv1.2": ("TLS_RSA_WITH_IDEA_CBC_SHA",)}
    result = check("tls.ciphers", only_995_accepting(idea), policy=under("pci-dss-4"))
    assert result.status == "fail" and "64-bit block cipher" in result.summary


def test_a_key_whose_size_could_not_be_read_is_an_error_not_a_pass() -> None:
    facts = endpoint(pop3=pop3(outcome="closed", stls=None))
    leaf, *rest = facts.pop3s.tls.chain
    odd = replace(leaf, key_type="EllipticCurveExplicit", key_bits=0)
    facts = replace(
        facts, pop3s=replace(facts.pop3s, tls=replace(facts.pop3s.tls, chain=(odd, *rest)))
    )
    result = check("cert.strength", facts)
    assert result.status == "error" and "could not read the size" in result.summary


def test_a_server_refusing_our_hellos_for_the_version_it_negotiates_is_believed_nowhere() -> None:
    from scanner._tls import reconciled

    refused = support({"TLSv1.3": MODERN_SUITES["TLSv1.3"]})
    fixed = reconciled(refused, tls(version="TLSv1.2"))
    assert fixed.accepted_versions["TLSv1.2"] is True
    assert fixed.accepted_versions["TLSv1"] is None and fixed.accepted_versions["SSLv3"] is None
    assert fixed.accepted_versions["TLSv1.3"] is True
    assert "refused our test hellos" in (fixed.error or "")
    assert check("tls.ciphers", only_995_accepting_support(fixed)).status == "error"


def test_compression_and_groups_under_the_minimum_fail_insecure_renegotiation_warns() -> None:
    crime = check("tls.ciphers", only_995_accepting(MODERN_SUITES, compression=True))
    assert crime.status == "fail" and "TLS compression (CRIME)" in crime.summary
    curves = only_995_accepting(MODERN_SUITES, groups=("x25519", "secp192r1", "ffdhe2048"))
    weak = check("tls.ciphers", curves)
    assert weak.status == "fail" and "(secp192r1)" in weak.summary
    bsi = check("tls.ciphers", curves, policy=under("bsi-tr-02102-2"))
    assert "(secp192r1, ffdhe2048)" in bsi.summary  # BSI wants 3000-bit finite fields
    old = check("tls.ciphers", only_995_accepting(MODERN_SUITES, secure_renegotiation=False))
    assert old.status == "warn" and "RFC 5746" in old.summary
