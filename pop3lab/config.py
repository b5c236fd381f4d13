"""What one emulated POP3 endpoint is: a frozen, validated, hashable description.

`EndpointConfig` is the only thing the rest of pop3lab needs to know about an endpoint. It is
hashable so that expensive derived objects (TLS contexts) can be cached per config.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from pop3lab.ntlm import NtlmNames
from pop3lab.schannel import EXCHANGE_ON_WINDOWS, WINDOWS, TlsProfile, exchange_tls

EXCHANGE_PROFILES = ("exchange2010", "exchange2013", "exchange2016", "exchange2019")
PROFILES = (*EXCHANGE_PROFILES, "generic", "dovecot_like")
LOGIN_TYPES = ("SecureLogin", "PlainTextAuthentication", "PlainTextLogin")
# Frozen, so one shared default is safe.
DEFAULT_NTLM_NAMES = NtlmNames()
# Every listener an endpoint can have; each is switched on by the config field of its name.
SERVICES = ("pop3", "pop3s", "imap", "imaps", "submission", "submissions")
# The values of a receive connector's AuthMechanism that decide what SMTP submission offers
# (Set-ReceiveConnector); the Client Frontend connector has all four by default.
SUBMISSION_AUTH = ("Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS")

# Spellings people actually type, mapped to the ssl enum. "TLSv1" is OpenSSL's name for 1.0.
_TLS_NAMES = {
    "TLSV1": ssl.TLSVersion.TLSv1,
    "TLSV1.0": ssl.TLSVersion.TLSv1,
    "TLSV1.1": ssl.TLSVersion.TLSv1_1,
    "TLSV1.2": ssl.TLSVersion.TLSv1_2,
    "TLSV1.3": ssl.TLSVersion.TLSv1_3,
}

TlsVersionLike = ssl.TLSVersion | str


def parse_tls_version(value: TlsVersionLike) -> ssl.TLSVersion:
    """Turn "TLSv1.2", "TLSv1_2", "1.2" or an `ssl.TLSVersion` into an `ssl.TLSVersion`."""
    if isinstance(value, ssl.TLSVersion):
        return value
    key = value.strip().upper().replace("_", ".")
    if not key.startswith("TLSV"):
        key = "TLSV" + key
    try:
        return _TLS_NAMES[key]
    except KeyError:
        raise ValueError(f"unknown TLS version {value!r}") from None


@dataclass(frozen=True)
class EndpointConfig:
    """One emulated server: its product profile, Exchange LoginType and TLS set-up.

    `cert_kind=None` means no certificate is bound: Exchange then drops STLS from CAPA and
    answers the POP3S port with a plaintext `-ERR Connection is closed. 13`.
    `tls_versions` is (minimum, maximum) for both POP3S and STLS; strings are normalised to
    `ssl.TLSVersion` on construction.
    `accounts` are the mailboxes that can log in, as (username, password) pairs (a dict is
    accepted and normalised, so the config stays hashable); where the profile takes passwords
    (inside TLS, and before it under PlainTextLogin), they log in with USER/PASS or AUTH PLAIN.
    `sasl_only` drops USER/PASS everywhere, for servers that take passwords by SASL alone.
    `windows` ("2008r2", "2012r2", "2016", "2019", "2022") makes an Exchange endpoint serve
    TLS as SChannel does on that Windows Server (pop3lab.schannel): its protocols, suites
    and their order, curves and DHE size, in place of `tls_versions`. `sslv2` lets a 2008 R2
    profile answer SSL 2.0 hellos (its default depends on the update level).

    IMAP4 (ports 143/993) and SMTP submission (587 with STARTTLS, 465 with implicit TLS) are
    off unless `imap`/`imaps`/`submission`/`submissions` turn them on. `imap_login_type` and
    `imap_ntlm` are Set-ImapSettings' LoginType and EnableGSSAPIAndNTLMAuth; None takes the
    POP3 value (resolved on construction). `submission_auth` is the connector's
    AuthMechanism, any of `SUBMISSION_AUTH` (a comma-separated string is accepted).
    `ntlm_names` are what an NTLM CHALLENGE discloses; its Version field is the build of
    `windows`, or of the oldest Windows the Exchange release runs on.
    """

    profile: str = "exchange2016"
    login_type: str = "SecureLogin"
    ntlm: bool = True
    cert_kind: str | None = "good"
    cert_name: str = "mail.example.test"
    tls_versions: tuple[TlsVersionLike, TlsVersionLike] = (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3,
    )
    pop3: bool = True
    pop3s: bool = True
    stls: bool = True
    generic_accepts_user_rejects_pass: bool = False
    banner: str | None = None
    idle_timeout: float = 60.0
    accounts: tuple[tuple[str, str], ...] = ()
    sasl_only: bool = False
    windows: str | None = None
    sslv2: bool = False
    imap: bool = False
    imaps: bool = False
    imap_login_type: str | None = None
    imap_ntlm: bool | None = None
    submission: bool = False
    submissions: bool = False
    submission_auth: tuple[str, ...] | str = SUBMISSION_AUTH
    ntlm_names: NtlmNames = DEFAULT_NTLM_NAMES

    def __post_init__(self) -> None:
        """Reject nonsense early, where the mistake is made, and normalise TLS versions."""
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {self.profile!r}")
        if self.login_type not in LOGIN_TYPES:
            raise ValueError(f"login_type must be one of {LOGIN_TYPES}, not {self.login_type!r}")
        if self.imap_login_type not in (None, *LOGIN_TYPES):
            raise ValueError(f"imap_login_type must be one of {LOGIN_TYPES}")
        low, high = (parse_tls_version(v) for v in self.tls_versions)
        if low > high:
            raise ValueError(f"tls_versions minimum {low.name} is above maximum {high.name}")
        if self.banner is not None and ("\r" in self.banner or "\n" in self.banner):
            raise ValueError("banner must be a single line")
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if self.windows is not None or self.sslv2:
            exchange_tls(self.profile, self.windows or "", sslv2=self.sslv2)  # raises if wrong
        # Frozen dataclasses can only be normalised through object.__setattr__.
        object.__setattr__(self, "tls_versions", (low, high))
        object.__setattr__(self, "accounts", tuple(sorted(dict(self.accounts).items())))
        if self.imap_login_type is None:
            object.__setattr__(self, "imap_login_type", self.login_type)
        if self.imap_ntlm is None:
            object.__setattr__(self, "imap_ntlm", self.ntlm)
        object.__setattr__(self, "submission_auth", _auth_mechanisms(self.submission_auth))

    @property
    def is_exchange(self) -> bool:
        """True for the four Exchange profiles, whose wire behaviour is documented exactly."""
        return self.profile in EXCHANGE_PROFILES

    @property
    def tls_profile(self) -> TlsProfile | None:
        """SChannel's defaults on the endpoint's Windows, or None for a plain OpenSSL server."""
        if self.windows is None:
            return None
        return exchange_tls(self.profile, self.windows, sslv2=self.sslv2)

    @property
    def tls_min(self) -> ssl.TLSVersion:
        """Lowest TLS version the endpoint's TLS listeners accept."""
        return parse_tls_version(self.tls_versions[0])

    @property
    def tls_max(self) -> ssl.TLSVersion:
        """Highest TLS version the endpoint's TLS listeners accept."""
        return parse_tls_version(self.tls_versions[1])

    @property
    def has_cert(self) -> bool:
        """Whether a certificate is bound, i.e. whether any TLS can happen at all."""
        return self.cert_kind is not None

    def password_of(self, username: str) -> str | None:
        """The password of the account `username`, or None when there is no such account."""
        return dict(self.accounts).get(username)

    @property
    def plaintext_login(self) -> bool:
        """Whether a password would be accepted before TLS (what the scanner must find)."""
        return self.login_type == "PlainTextLogin"

    @property
    def imap_plaintext_login(self) -> bool:
        """Whether IMAP would take a password before TLS (Set-ImapSettings' PlainTextLogin)."""
        return self.imap_login_type == "PlainTextLogin"

    @property
    def submission_plaintext_auth(self) -> bool:
        """Whether SMTP submission would take a password before TLS: basic authentication
        without BasicAuthRequireTLS."""
        auth = self.submission_auth
        return "BasicAuth" in auth and "BasicAuthRequireTLS" not in auth

    @property
    def ntlm_version(self) -> tuple[int, int, int]:
        """The Windows build an NTLM CHALLENGE reports: the endpoint's Windows, else the
        oldest one its Exchange release runs on."""
        windows = self.windows or EXCHANGE_ON_WINDOWS.get(self.profile, ("2016",))[0]
        return WINDOWS[windows].build


def _auth_mechanisms(value: tuple[str, ...] | str) -> tuple[str, ...]:
    """AuthMechanism as a tuple in `SUBMISSION_AUTH` order, checked as Exchange checks it:
    BasicAuthRequireTLS needs BasicAuth and Tls."""
    names = {part.strip() for part in value.split(",")} if isinstance(value, str) else set(value)
    names.discard("")
    unknown = names - set(SUBMISSION_AUTH)
    if unknown:
        raise ValueError(f"submission_auth values must be among {SUBMISSION_AUTH}: {unknown}")
    if "BasicAuthRequireTLS" in names and not {"BasicAuth", "Tls"} <= names:
        raise ValueError("BasicAuthRequireTLS needs BasicAuth and Tls")
    return tuple(name for name in SUBMISSION_AUTH if name in names)
