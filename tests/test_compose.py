"""docker-compose.yml and the Dockerfile are consistent with themselves and the settings.

No Docker engine runs where the tests do: these checks read the files only.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example_names() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z_][A-Z0-9_]*=", line)}


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name


def test_the_app_services_share_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(APP_SERVICES) <= set(services)
    images = {(services[s].get("build"), services[s].get("image")) for s in APP_SERVICES}
    assert len(images) == 1, images
    assert {services[s]["command"][0] for s in APP_SERVICES} == set(APP_SERVICES)


def test_every_named_volume_used_is_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_every_variable_used_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used, "the compose file interpolates nothing?"
    assert used <= env_example_names(), used - env_example_names()


def test_every_setting_read_from_the_environment_is_in_env_example() -> None:
    sources = [ROOT / "popcompliance" / "settings.py", ROOT / "popcompliance" / "celery.py"]
    sources.append(ROOT / "popcompliance" / "accounts" / "sso_settings.py")
    pattern = r"env_(?:str|bool|int|list)\(\s*\"([A-Z0-9_]+)\""
    read = {name for path in sources for name in re.findall(pattern, path.read_text())}
    assert {"SECRET_KEY", "DATABASE_URL", "POPC_METRICS_TOKEN"} <= read
    assert read <= env_example_names(), read - env_example_names()


def test_the_app_services_read_env_and_point_at_the_services(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        assert "@postgres:5432/" in service["environment"]["DATABASE_URL"]
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:6379/")


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("redis", "postgres", "web"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for dependency in ("postgres", "redis"):
        assert services["web"]["depends_on"][dependency]["condition"] == "service_healthy"
    for name in ("redis", "postgres", "beat"):
        assert services[name]["volumes"], name


def dockerfile_instruction(name: str) -> list[str]:
    """The arguments of the Dockerfile's last `name` instruction (exec or shell form)."""
    lines = [
        line.split(None, 1)[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.upper().startswith(name + " ")
    ]
    assert lines, f"the Dockerfile has no {name}"
    value = lines[-1].strip()
    return yaml.safe_load(value) if value.startswith("[") else shlex.split(value)


def test_the_dockerfile_entrypoint_exists_and_handles_every_role() -> None:
    entrypoint = dockerfile_instruction("ENTRYPOINT")
    assert entrypoint[0].startswith("/app/")
    script = ROOT / entrypoint[0].removeprefix("/app/")
    assert script.is_file()
    text = script.read_text()
    assert dockerfile_instruction("CMD") == ["web"]
    for role in APP_SERVICES:
        assert f"    {role})" in text, role
    assert "migrate" in text and "gunicorn popcompliance.wsgi" in text
    assert "--pool threads --concurrency 16" in text


def test_the_image_is_built_as_described() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install -r requirements.txt" in text
    assert "collectstatic --noinput" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    for path in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / path).exists(), path
