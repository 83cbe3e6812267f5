"""docker/: the compose file, images and instance files agree with each other and the code.

This machine has a Docker client but no engine (and no compose v2 plugin), so nothing
here builds or starts a container. What can be checked without one is checked: the
compose structure (services, builds, env, volumes, depends_on, health checks), that
every variable the instance files read reaches every Dagster container, that secrets
only pass through from the host, that the workspace points at the code server, that
images pin the versions tested here, and that both instance files validate against
Dagster's own config schemas (docker/dagster.yaml is also loaded against a real
PostgreSQL in test_postgres_instance.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from ual_dagster.config import bundled_profiles, load_profile

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DAGSTER_SERVICES = ("ual_code", "webserver", "daemon")
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET", re.IGNORECASE)
_VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${X}, ${X:-default}, ${X:?error}; `$$` is a literal $."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _VAR.sub(one, text.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def _service_env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment uses the mapping form throughout"
    return env


def _env_vars_read_by(instance_yaml: Path) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(instance_yaml.read_text()))
    return found


def _dockerfile(service: dict[str, Any]) -> str:
    return (REPO / service["build"]["dockerfile"]).read_text()


def test_services_build_from_the_repository(compose):
    services = compose["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:")
    for name in DAGSTER_SERVICES:
        build = services[name]["build"]
        assert (DOCKER / build["context"]).resolve() == REPO, f"{name}: build context must be the repo root"
        assert (REPO / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} missing"
        assert services[name]["image"]
    assert services["ual_code"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["webserver"]["build"] == services["daemon"]["build"]
    assert services["webserver"]["build"]["dockerfile"] == "docker/Dockerfile.dagster"
    assert set(compose["volumes"]) == {"pgdata", "ual-state"}


def test_every_dagster_container_gets_what_the_instance_reads(compose):
    needed = _env_vars_read_by(DOCKER / "dagster.yaml")
    assert {"DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "UAL_DAGSTER_STORAGE_DIR"} <= needed
    for name in DAGSTER_SERVICES:
        service = compose["services"][name]
        missing = needed - set(_service_env(service))
        assert not missing, f"{name} lacks {sorted(missing)}, read by docker/dagster.yaml"
        dockerfile = _dockerfile(service)
        assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
        assert "COPY docker/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in dockerfile
    env = _service_env(compose["services"]["ual_code"])
    assert env["DAGSTER_PG_HOST"] == "postgres"
    # The server's own account and the one Dagster logs in with are the same variables.
    pg_env = _service_env(compose["services"]["postgres"])
    assert pg_env["POSTGRES_PASSWORD"] == env["DAGSTER_PG_PASSWORD"]
    assert pg_env["POSTGRES_USER"] == env["DAGSTER_PG_USERNAME"]
    assert pg_env["POSTGRES_DB"] == env["DAGSTER_PG_DB"]


def test_workspace_points_at_the_code_server(compose):
    (entry,) = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"]
    grpc = entry["grpc_server"]
    code = compose["services"][grpc["host"]]
    command = code["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == "assets.definitions"
    assert command[command.index("-d") + 1] == "/opt/ual"  # where the Dockerfile puts the project
    assert int(command[command.index("-p") + 1]) == grpc["port"]
    health = code["healthcheck"]["test"]
    assert int(health[health.index("-p") + 1]) == grpc["port"]
    # The Dockerfile's default command is the same server (for a plain `docker run`).
    assert '"-m", "assets.definitions"' in _dockerfile(code) and "WORKDIR /opt/ual" in _dockerfile(code)
    dagster_image = _dockerfile(compose["services"]["webserver"])
    assert "COPY docker/workspace.yaml /opt/dagster/app/workspace.yaml" in dagster_image
    for name in ("webserver", "daemon"):
        cmd = compose["services"][name]["command"]
        assert cmd[cmd.index("-w") + 1] == "/opt/dagster/app/workspace.yaml"
    assert compose["services"]["daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_secrets_pass_through_from_the_host_and_are_never_baked(compose):
    for name, service in compose["services"].items():
        for key, value in _service_env(service).items():
            if not SECRET_NAME.search(key):
                continue
            # Either bare (passed through when the host sets it) or a required ${VAR:?...}.
            assert value is None or re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), f"{name}.{key} = {value!r}"
    code_env = _service_env(compose["services"]["ual_code"])
    for key in ("OPENAI_API_KEY", "HF_TOKEN"):
        assert key in code_env and code_env[key] is None
    with pytest.raises(KeyError, match="DAGSTER_PG_PASSWORD"):
        interpolate(code_env["DAGSTER_PG_PASSWORD"], {})
    for dockerfile in DOCKER.glob("Dockerfile*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith(("ENV", "ARG")) or line.startswith("    ") and "=" in line:
                assert not SECRET_NAME.search(line.split("=")[0]), f"{dockerfile.name}: {line}"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".ual_state*", ".env", ".git"} <= set(ignored)


def test_state_volume_is_shared_at_the_profiles_state_dir(compose):
    targets = set()
    for name in DAGSTER_SERVICES:
        (mount,) = compose["services"][name]["volumes"]
        volume, target = interpolate(mount, {}).split(":")
        assert volume == "ual-state"
        targets.add(target)
        storage = interpolate(_service_env(compose["services"][name])["UAL_DAGSTER_STORAGE_DIR"], {})
        assert PurePosixPath(storage).is_relative_to(target), "compute logs must be on the shared volume"
    (target,) = targets
    profile = interpolate(_service_env(compose["services"]["ual_code"])["UAL_PROFILE"], {})
    assert profile in bundled_profiles()
    # The default profile's state_dir, resolved in the image's project root, is the mount.
    assert PurePosixPath("/opt/ual") / load_profile(profile).storage.state_dir == PurePosixPath(target)
    moved = interpolate(compose["services"]["ual_code"]["volumes"][0], {"UAL_STATE_MOUNT": "/mnt/ual-state"})
    assert moved == "ual-state:/mnt/ual-state"


def test_start_order_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    assert services["ual_code"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "ual_code": {"condition": "service_healthy"},
        }
    for name in ("postgres", "ual_code"):
        assert services[name]["healthcheck"]["test"]


def test_images_pin_the_versions_tested_here():
    def arg(text: str, name: str) -> str:
        match = re.search(rf"^ARG {name}=(\S+)$", text, re.MULTILINE)
        assert match, f"ARG {name} missing"
        return match.group(1)

    cpu, cuda, system = (DOCKER / n for n in ("Dockerfile", "Dockerfile.cuda", "Dockerfile.dagster"))
    torch_version = version("torch").split("+")[0]
    for path in (cpu, cuda, system):
        assert arg(path.read_text(), "DAGSTER_VERSION") == version("dagster"), path.name
    assert arg(system.read_text(), "DAGSTER_LIBS_VERSION") == version("dagster-postgres") == version("dagster-k8s")
    assert arg(cpu.read_text(), "TORCH_VERSION") == torch_version
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu.read_text()
    assert cpu.read_text().startswith("# ") and "FROM python:3.11-slim" in cpu.read_text()
    cuda_text = cuda.read_text()
    assert arg(cuda_text, "TORCH_VERSION") == torch_version
    assert arg(cuda_text, "CUDA_IMAGE").startswith("nvidia/cuda:")
    assert "download.pytorch.org/whl/${TORCH_CUDA}" in cuda_text and " accelerate " in cuda_text
    assert '"accelerate", "launch", "-m", "ual_dagster.train.pipes_entry"' in cuda_text
    assert "pip install" in system.read_text() and '"torch' not in system.read_text()


@pytest.mark.parametrize("filename", ["dagster.yaml", "dagster-k8s.yaml"])
def test_instance_files_validate_against_dagsters_schemas(filename, tmp_path, monkeypatch):
    """Top level and every configurable class (K8sRunLauncher included: no cluster needed)."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import configurable_class_data
    from dagster._serdes.config_class import class_from_code_pointer

    for name in _env_vars_read_by(DOCKER / filename):
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else str(tmp_path / name.lower()))
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DOCKER / filename, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))
    assert "postgres" in config["storage"]
    for section in ("run_launcher", "compute_logs", "local_artifact_storage", "run_coordinator"):
        if section not in config:
            continue
        # As the instance does it: `dagster.core.*` names (the documented spelling) map to dagster._core.
        data = configurable_class_data(config[section])
        cls = class_from_code_pointer(data.module_name, data.class_name)
        result = process_config(cls.config_type(), config[section].get("config") or {})
        assert result.success, f"{filename} {section}: {[e.message for e in result.errors]}"
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_docker_compose_config_when_the_plugin_is_present(monkeypatch):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` plugin on this machine (the structural tests above still ran)")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "only-for-config")
    done = subprocess.run(
        [docker, "compose", "-f", str(DOCKER / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
