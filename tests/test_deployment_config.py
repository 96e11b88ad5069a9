"""What can be checked of the deployment files without a Docker engine or Terraform:
they parse, and every environment variable they set is one the service reads."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

from scripts.migrate import SETTINGS
from scripts.run import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = tuple(SETTINGS)
# Read by libraries or the container itself rather than by a settings class.
GENERIC = {"SERVICE", "PORT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def accepted_env(service: str) -> set[str]:
    """Every environment variable name the service's settings class reads."""
    module, name = SETTINGS[service].split(":")
    cls = getattr(importlib.import_module(module), name)
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_sets_only_variables_the_service_reads(service: str) -> None:
    env = compose()["services"][service]["environment"]
    unknown = set(env) - accepted_env(service) - GENERIC
    assert not unknown, f"{service} does not read {sorted(unknown)}"
    assert env["SERVICE"] == service
    assert int(env["PORT"]) == DEFAULT_PORTS[service]


def test_compose_gateway_points_at_the_sibling_services() -> None:
    env = compose()["services"]["gateway"]["environment"]
    for sibling in ("optimizer", "evolution", "reward"):
        assert env[f"GATEWAY_{sibling.upper()}_URL"] == f"http://{sibling}:{DEFAULT_PORTS[sibling]}"
    assert env["STORAGE_URL"].startswith("s3://")


def test_compose_databases_exist_in_the_init_script() -> None:
    init = (ROOT / "infra" / "compose" / "postgres-init.sql").read_text()
    for service in APP_SERVICES:
        url = compose()["services"][service]["environment"][f"{service.upper()}_DATABASE_URL"]
        database = url.rsplit("/", 1)[1]
        assert f"CREATE DATABASE {database};" in init


def test_dockerfile_starts_the_named_service_module() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "services.${SERVICE}.main:app" in dockerfile
    assert "torch==2.13.0" in dockerfile
    for service in APP_SERVICES:
        assert (ROOT / "services" / service / "main.py").exists()


def test_terraform_parses_and_sets_only_known_variables() -> None:
    import hcl2

    parsed = {path.name: hcl2.load(path.open()) for path in (ROOT / "infra").glob("*.tf")}
    assert {"main.tf", "ecs.tf", "storage.tf", "alb.tf", "iam.tf"} <= set(parsed)
    ecs = (ROOT / "infra" / "ecs.tf").read_text()
    for service in APP_SERVICES:
        block = re.search(rf"^\s+{service}\s+=\s+\{{(.*?)\}}$", ecs, re.S | re.M)
        assert block, f"no environment block for {service}"
        names = set(re.findall(r"([A-Z][A-Z0-9_]+)\s+=", block.group(1)))
        unknown = names - accepted_env(service) - GENERIC
        assert not unknown, f"terraform sets {sorted(unknown)} that {service} does not read"
        assert f"{service.upper()}_DATABASE_URL" in accepted_env(service)
    main = (ROOT / "infra" / "main.tf").read_text()
    for service, port in DEFAULT_PORTS.items():
        assert re.search(rf"{service}\s+=\s+{{ port = {port},", main)


def test_migrate_script_creates_each_services_tables(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from scripts.migrate import main

    for service in APP_SERVICES:
        db = tmp_path / f"{service}.db"
        monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
        assert main([service]) == 0
        tables = {r[0] for r in sqlite3.connect(db).execute(
            "select name from sqlite_master where type='table'")}
        assert f"alembic_version_{service}" in tables
        assert len(tables) >= 2


def test_compose_has_no_fallback_secrets_and_publishes_only_the_gateway_locally() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("SERVICE_TOKEN", "GATEWAY_SESSION_SECRET", "POSTGRES_PASSWORD",
                 "MINIO_ROOT_PASSWORD", "AFINADOR_ADMIN_PASSWORD"):
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, name
        assert all(not use.startswith(":-") for use in uses), f"{name} has a fallback value"
    published = {name: spec.get("ports") for name, spec in compose()["services"].items()
                 if spec.get("ports")}
    assert list(published) == ["gateway"]
    assert published["gateway"] == ["${GATEWAY_BIND:-127.0.0.1}:8000:8000"]


def test_secrets_script_writes_strong_values_and_keeps_an_existing_file(tmp_path: Path) -> None:
    from scripts import secrets as secrets_script
    from services.common.settings import check_secret

    target = tmp_path / ".env"
    assert secrets_script.main(["--path", str(target)]) == 0
    values = dict(line.split("=", 1) for line in target.read_text().splitlines())
    for name in ("SERVICE_TOKEN", "GATEWAY_SESSION_SECRET"):
        check_secret(name, values[name], "production")  # raises if weak
    assert oct(target.stat().st_mode)[-3:] == "600"
    assert secrets_script.main(["--path", str(target)]) == 1  # never overwritten silently
    assert dict(line.split("=", 1) for line in target.read_text().splitlines()) == values


def test_terraform_files_are_formatted() -> None:
    import shutil
    import subprocess

    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed (no registry here ships it)")
    done = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(ROOT / "infra")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
