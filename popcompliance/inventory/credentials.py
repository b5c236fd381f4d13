"""Monitoring passwords at rest: Fernet tokens under POPC_CREDENTIALS_KEY.

The keys are a list so they can be rotated: the first encrypts, every one decrypts, and
`manage.py rotate_credentials_key` re-encrypts the stored tokens with the first. Without
POPC_CREDENTIALS_KEY one key is derived from SECRET_KEY; that key also stays a decrypting key
when POPC_CREDENTIALS_KEY is set, so passwords stored before an operator set it stay readable
until the rotation moves them to the new key. No database access here.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core import checks

import scanner

# Names what the derived key is for, so it can never equal a key derived from SECRET_KEY for
# another purpose.
_DERIVATION_INFO = b"popcompliance: Fernet key for the servers' monitoring passwords"
# Fills the half of a monitoring account that is not being checked.
_STAND_IN = "x"


class UndecryptablePassword(Exception):
    """No configured key decrypts a stored monitoring password (the key was changed)."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def derived_key(secret_key: str) -> bytes:
    """The Fernet key used when POPC_CREDENTIALS_KEY is unset: HKDF-SHA256 of SECRET_KEY."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def cipher() -> MultiFernet:
    """The configured keys, first one encrypting, then the key derived from SECRET_KEY."""
    return _cipher(tuple(settings.POPC_CREDENTIALS_KEY), settings.SECRET_KEY)


# Keyed by the settings it is built from, so a changed setting (a test's override) takes
# effect; the cache spares each encrypt and decrypt the HKDF derivation.
@functools.lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in [*keys, derived_key(secret_key)]])


def encrypt(password: str) -> str:
    return cipher().encrypt(password.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptablePassword(
            "the stored monitoring password cannot be decrypted with the current "
            "POPC_CREDENTIALS_KEY"
        ) from None


def reencrypt(token: str) -> str:
    """The same password encrypted with the first key; raises UndecryptablePassword."""
    try:
        return cipher().rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptablePassword("no configured key decrypts this password") from None


def account_errors(username: str, password: str | None, *, stored: bool) -> dict[str, str]:
    """What is wrong with a monitoring account about to be saved, by field ("monitor_username"
    or "monitor_password"). `password` is the new one, None to keep the `stored` one. The login
    test needs both halves or neither, in a form the scanner accepts."""
    if (password or stored) and not username:
        return {"monitor_username": "Give the username this password belongs to."}
    if username and not (password or stored):
        return {"monitor_password": "Give this account's password."}
    # Each half is checked with a stand-in for the other, so each objection lands on its own
    # field and a username changed while the password is kept is checked too.
    errors = _scanner_objection("monitor_username", username, _STAND_IN) if username else {}
    if password:
        errors |= _scanner_objection("monitor_password", _STAND_IN, password)
    return errors


def _scanner_objection(field: str, username: str, password: str) -> dict[str, str]:
    try:
        scanner.Credentials(username, password)
    except ValueError as exc:
        return {field: f"{str(exc).capitalize()}."}
    return {}


def check_credentials_key(**kwargs: Any) -> list[checks.CheckMessage]:
    if settings.POPC_CREDENTIALS_KEY:
        return []
    return [
        checks.Warning(
            "POPC_CREDENTIALS_KEY is not set: the servers' monitoring passwords are encrypted "
            "with a key derived from SECRET_KEY, so changing SECRET_KEY makes them unreadable.",
            hint=(
                "Set POPC_CREDENTIALS_KEY to a key from `manage.py generate_credentials_key`, "
                "then run `manage.py rotate_credentials_key` to move stored passwords to it."
            ),
            id="inventory.W001",
        )
    ]
