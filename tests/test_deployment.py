"""Deployment files agree with the code: .env.example and docker-compose.yml name exactly the
settings the server reads, bad settings fail with a clear message, and the server runs on a
replica-set URI as it would against MongoDB."""

from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from pydantic import ValidationError

from tests.conftest import SpawnServer
from usercredits.server.settings import LOCAL_JWT_SECRET, Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {f"USERCREDITS_{name.upper()}" for name in Settings.model_fields}
STRIPE = {"stripe_secret_key": "sk_test_unused", "stripe_webhook_secret": "whsec_unused"}


def test_env_example_lists_every_setting_and_only_those() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names == SETTINGS


def test_compose_runs_a_replica_set_and_passes_every_setting() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mongo, api = compose["services"]["mongo"], compose["services"]["api"]
    assert "--replSet" in mongo["command"] and "healthcheck" in mongo
    assert api["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert api["build"] == "."
    assert set(api["environment"]) == SETTINGS


def test_compose_can_run_two_instances_behind_a_proxy() -> None:
    """`docker compose --profile scale up`: a second instance with the same settings, and a
    proxy that spreads requests over both and upgrades websockets."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    first, second, proxy = services["api"], services["api-2"], services["proxy"]
    assert second["environment"] == first["environment"] and second["build"] == "."
    assert second["profiles"] == proxy["profiles"] == ["scale"]
    assert "ports" not in second, "reached through the proxy"
    assert set(proxy["depends_on"]) == {"api", "api-2"}
    (mount,) = proxy["volumes"]
    config = (ROOT / mount.split(":")[0]).read_text()
    assert "server api:8000" in config and "server api-2:8000" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header X-Forwarded-For" in config


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"default_currency": "XYZ"}, "unknown currency 'XYZ'"),
        ({"production": True}, "neither USERCREDITS_JWT_SECRET nor"),
        ({"oidc_issuer": "https://id.example"}, "USERCREDITS_OIDC_AUDIENCE is not"),
        ({"stripe_secret_key": "sk_test_1"}, "without USERCREDITS_STRIPE_WEBHOOK_SECRET"),
        ({"jwt_secret": "short"}, "at least 32 characters"),
        ({"production": True, "jwt_secret": LOCAL_JWT_SECRET}, "published with this service"),
        (
            {"production": True, "jwt_secret": "s" * 32, **STRIPE},
            "USERCREDITS_MONGODB_URI is not set, so the embedded SecantusDB",
        ),
        ({"port": 70000}, "less than or equal to 65535"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**settings)  # type: ignore[arg-type]


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERCREDITS_STRIPE_SECRET_KEY", "")
    monkeypatch.setenv("USERCREDITS_SEED_CATALOGUE", "")
    settings = Settings()
    assert settings.stripe_secret_key is None and settings.seed_catalogue is None


async def test_the_server_runs_on_a_replica_set_uri(
    database_uri: str, spawn_server: SpawnServer, http: aiohttp.ClientSession
) -> None:
    address = urlsplit(database_uri).netloc
    server = await spawn_server(
        USERCREDITS_MONGODB_URI=f"mongodb://{address}/?replicaSet=secantus&retryWrites=false",
        USERCREDITS_PRODUCTION="true",
        USERCREDITS_STRIPE_SECRET_KEY="sk_test_unused",
        USERCREDITS_STRIPE_WEBHOOK_SECRET="whsec_unused",
    )
    async with http.get(f"{server.url}/readyz") as response:
        assert response.status == 200
    server.process.terminate()
    assert await server.process.wait() == 0
