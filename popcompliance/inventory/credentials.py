"""Monitoring passwords at rest: Fernet tokens under POPC_CREDENTIALS_KEY.

The keys are a list so they can be rotated: the first encrypts, every one decrypts, and
`manage.py rotate_credentials_key` re-encrypts the stored tokens with the first. Without
POPC_CREDENTIALS_KEY one key is derived from SECRET_KEY. Once POPC_CREDENTIALS_KEY is set, that
derived key decrypts nothing any more: whoever holds SECRET_KEY (or, for the development key,
everyone) must not read the passwords. Only the moving of stored passwords to the configured
key (`former_key_token`, run by every `migrate` and by the rotation) still reads the keys they
were encrypted with before. No database access here.
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
    """The keys of POPC_CREDENTIALS_KEY, first one encrypting; without it, the key derived from
    SECRET_KEY."""
    return _cipher(tuple(settings.POPC_CREDENTIALS_KEY) or _derived_keys(settings.SECRET_KEY))


def _cipher_with_former_keys() -> MultiFernet:
    """cipher(), then the keys passwords were encrypted with before POPC_CREDENTIALS_KEY was set:
    the one derived from SECRET_KEY, and the one derived from the development key, which
    `make run` used before it generated keys of its own (and with them a new SECRET_KEY)."""
    configured = tuple(settings.POPC_CREDENTIALS_KEY)
    if not configured:
        return cipher()
    secret_keys = (settings.SECRET_KEY, settings.POPC_DEVELOPMENT_SECRET_KEY)
    return _cipher(configured + _derived_keys(*secret_keys))


# Both caches are keyed by the settings they are built from, so a changed setting (a test's
# override) takes effect; they spare each encrypt and decrypt the HKDF derivations and the
# building of the ciphers.
@functools.lru_cache(maxsize=8)
def _derived_keys(*secret_keys: str) -> tuple[str, ...]:
    return tuple(derived_key(secret_key).decode() for secret_key in dict.fromkeys(secret_keys))


@functools.lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


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
    """The same password encrypted with the first key; raises UndecryptablePassword. Reads
    tokens of the former keys too (see _cipher_with_former_keys)."""
    try:
        return _cipher_with_former_keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptablePassword("no key decrypts this password") from None


def former_key_token(token: str) -> str | None:
    """The password re-encrypted with the first key when only a former key decrypts it; None
    when the configured keys already do. Raises UndecryptablePassword."""
    try:
        cipher().decrypt(token.encode())
    except InvalidToken:
        return reencrypt(token)
    return None


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
                "Set POPC_CREDENTIALS_KEY to a key from `manage.py generate_credentials_key`; "
                "the next `manage.py migrate` moves the stored passwords to it."
            ),
            id="inventory.W001",
        )
    ]
