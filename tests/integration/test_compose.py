"""deploy/compose.yaml: it parses, mounts only files the repo has, and agrees with the configs.

No container runtime is needed: what can go wrong offline is a path that does not exist, a port
one file moved and another did not, or a rule directory mounted where Prometheus does not look.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.config import Settings
from prometheus_tools import DEPLOY

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the repo path bound there (named volumes left out)."""
    binds: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            binds[target] = (DEPLOY / source).resolve()
    return binds


def _flag(service: dict[str, Any], name: str) -> str:
    (value,) = (arg.split("=", 1)[1] for arg in service["command"] if arg.startswith(f"{name}="))
    return str(value)


def test_it_starts_prometheus_alertmanager_grafana_and_jaeger_with_pinned_images(
    compose: dict[str, Any],
) -> None:
    """Four services, each image at a fixed version (never latest), on the host's network."""
    services = compose["services"]
    assert set(services) == {"prometheus", "alertmanager", "grafana", "jaeger"}
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: {image} is not pinned"
        # The configs in deploy/ name 127.0.0.1: only the host's network makes that the host.
        assert service["network_mode"] == "host", name


def test_every_file_it_mounts_is_in_the_repo(compose: dict[str, Any]) -> None:
    """A bind mount of a missing path would start the container on an empty directory."""
    for name, service in compose["services"].items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
            assert DEPLOY in source.parents, f"{name}: {source} is outside deploy/"
    named = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert {v for v in named if not v.startswith(".")} <= set(compose["volumes"])


def test_prometheus_loads_deploys_config_and_finds_the_rules(compose: dict[str, Any]) -> None:
    """The config file mounted is deploy/prometheus.yml; its rule_files glob lands on the rules."""
    prometheus = compose["services"]["prometheus"]
    mounts = _mounts(prometheus)
    config_at = _flag(prometheus, "--config.file")
    assert mounts[config_at] == DEPLOY / "prometheus.yml"
    config = _yaml(DEPLOY / "prometheus.yml")
    for pattern in config["rule_files"]:
        directory, glob = str(Path(config_at).parent / pattern).rsplit("/", 1)
        rules = sorted(mounts[directory].glob(glob))
        assert rules == sorted((DEPLOY / "prometheus").glob("*.yml")), pattern


def test_the_ports_agree_across_the_files(compose: dict[str, Any]) -> None:
    """Prometheus scrapes and Alertmanager posts to the console's default address; Prometheus
    alerts the Alertmanager where it listens; Grafana reads Prometheus where it listens."""
    services = compose["services"]
    console = f"{Settings.model_fields['console_host'].default}:"
    console += str(Settings.model_fields["console_port"].default)
    prometheus_config = _yaml(DEPLOY / "prometheus.yml")
    (scrape,) = prometheus_config["scrape_configs"]
    assert scrape["static_configs"][0]["targets"] == [console]
    alertmanager_at = _flag(services["alertmanager"], "--web.listen-address")
    (managers,) = prometheus_config["alerting"]["alertmanagers"]
    assert managers["static_configs"][0]["targets"] == [alertmanager_at]
    (receiver,) = _yaml(DEPLOY / "alertmanager" / "alertmanager.yml")["receivers"]
    assert receiver["webhook_configs"][0]["url"] == f"http://{console}/api/alerts/alertmanager"
    (datasource,) = _yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert datasource["url"] == f"http://{_flag(services['prometheus'], '--web.listen-address')}"
    assert (datasource["type"], datasource["isDefault"]) == ("prometheus", True)


def test_alertmanager_finds_its_bearer_token_file_beside_its_config(
    compose: dict[str, Any],
) -> None:
    """credentials_file is relative to the config: the whole directory is mounted, so the
    console-token a user puts beside alertmanager.yml is found (and git ignores it)."""
    alertmanager = compose["services"]["alertmanager"]
    config_at = Path(_flag(alertmanager, "--config.file"))
    assert _mounts(alertmanager)[str(config_at.parent)] == DEPLOY / "alertmanager"
    assert "/deploy/alertmanager/console-token" in (DEPLOY.parent / ".gitignore").read_text()


def test_grafana_is_provisioned_with_the_generated_dashboard(compose: dict[str, Any]) -> None:
    """The provider's folder holds bastion.json; the provisioning directory is deploy's."""
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    (provider,) = _yaml(DEPLOY / "grafana/provisioning/dashboards/bastion.yml")["providers"]
    assert mounts[f"{provider['options']['path']}/bastion.json"] == DEPLOY / "grafana/bastion.json"


def test_jaeger_takes_otlp_over_http_on_4318(compose: dict[str, Any]) -> None:
    """OTLP/HTTP on the standard port, where OTEL_EXPORTER_OTLP_ENDPOINT points Bastion."""
    jaeger = compose["services"]["jaeger"]
    assert _flag(jaeger, "--collector.otlp.http.host-port") == "127.0.0.1:4318"
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in COMPOSE.read_text()
