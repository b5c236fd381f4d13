"""Security settings: the deploy check with production settings, HTTPS headers, the CSP."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import Client, override_settings

from popcompliance.security import CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a production start: only what .env would set, nothing from the
    test run (no DJANGO_SETTINGS_MODULE override, no DEBUG)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "POPC_", "SECURE_", "DEBUG", "SECRET_KEY", "ALLOWED_"))
        and key not in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "X_FRAME_OPTIONS")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="popcompliance.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="popc.example.com",
        POPC_HTTPS="true",
        POPC_VAR_DIR=str(tmp_path),
        POPC_CREDENTIALS_KEY=Fernet.generate_key().decode(),
    )
    env.update(extra)
    return env


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_deploy_check_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = deploy_check(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_flags_plain_http(tmp_path: Path) -> None:
    # POPC_HTTPS=false (the embedded default) is a conscious choice the check still reports.
    result = deploy_check(production_env(tmp_path, POPC_HTTPS="false"))
    assert result.returncode != 0
    assert "security.W012" in result.stderr  # SESSION_COOKIE_SECURE


def test_a_typo_in_a_security_setting_fails_at_start(tmp_path: Path) -> None:
    result = deploy_check(production_env(tmp_path, POPC_HTTPS="ture"))
    assert result.returncode != 0
    assert "POPC_HTTPS must be true or false" in result.stderr


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600)
def test_https_redirect_spares_healthz() -> None:
    client = Client()
    assert client.get("/accounts/login/").status_code == 301
    assert client.get("/healthz").status_code in (200, 503)
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=3600")


@pytest.mark.django_db
def test_pages_send_the_hardening_headers() -> None:
    response = Client().get("/accounts/login/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_html_pages_carry_the_content_security_policy_and_json_does_not() -> None:
    client = Client()
    page = client.get("/accounts/login/")
    assert page["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    api = client.get("/healthz")
    assert "Content-Security-Policy" not in api


def test_templates_hold_no_inline_script_style_or_handler() -> None:
    inline = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)|\sstyle=|\son[a-z]+=")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "templates").rglob("*.html")
        if "emails" not in path.parts  # emails need inline styles; no browser CSP applies
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if inline.search(line)
    ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "key", ["", "insecure-development-key-set-SECRET_KEY-in-production", "change-me"]
)
def test_production_settings_refuse_a_missing_or_public_secret_key(
    tmp_path: Path, key: str
) -> None:
    result = deploy_check(production_env(tmp_path, SECRET_KEY=key))
    assert result.returncode != 0
    assert "ConfigurationError: SECRET_KEY is not set" in result.stderr
    assert "set SECRET_KEY, or SECRET_KEY_FILE" in result.stderr


def test_development_settings_start_with_the_development_key(tmp_path: Path) -> None:
    env = production_env(tmp_path, DEBUG="true")
    del env["SECRET_KEY"]
    command = [
        sys.executable,
        "manage.py",
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.SECRET_KEY == settings.POPC_DEVELOPMENT_SECRET_KEY)",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("True"), result.stderr
