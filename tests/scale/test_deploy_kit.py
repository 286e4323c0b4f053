"""The deploy kit, read without Docker: deploy/prefect.yaml, deploy/docker-compose.yml and deploy/Dockerfile."""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from importlib.metadata import version
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from prefect import Flow

from flows.cli import main
from flows.flags import flag
from tasks.runs.options import RunOptions
from tests.scale.scale_helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
API_URL = "http://prefect-server:4200/api"


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "prefect.yaml").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # One instruction per line: join continuation lines.
    return (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")


def _entrypoint(entrypoint: str) -> Flow[..., Any]:
    path, _, name = entrypoint.partition(":")
    assert (REPO_ROOT / path).is_file(), path
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    return flow


def test_prefect_yaml_deployments_point_at_the_flow(prefect_yaml: dict[str, Any]) -> None:
    deployments = {d["name"]: d for d in prefect_yaml["deployments"]}
    assert set(deployments) == {"nightly", "rerun"}
    for deployment in deployments.values():
        flow = _entrypoint(deployment["entrypoint"])
        assert flow.name == "render-manifest"
        assert set(deployment["parameters"]) <= set(inspect.signature(flow.fn).parameters)
        assert deployment["work_pool"]["name"] == "stylebatch-gpu"
    assert [s["cron"] for s in deployments["nightly"]["schedules"]] == ["0 2 * * *"]
    assert deployments["nightly"]["schedules"][0]["timezone"] == "UTC"
    assert "schedules" not in deployments["rerun"]
    assert "manifest" not in deployments["rerun"]["parameters"]  # given per run
    assert prefect_yaml["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $STYLEBATCH_HOME }}"}}
    ]


def test_every_run_knob_is_a_flag_a_flow_parameter_and_a_deployment_parameter(prefect_yaml: dict[str, Any]) -> None:
    """``RunOptions`` is the one declaration of a run's knobs: ``run --help`` and ``serve --help`` show a flag for
    each, the flow takes each as a parameter, and both deployments set each (the rerun's manifest comes per run)."""
    knobs = set(RunOptions.model_fields)
    flow = _entrypoint("flows/render_manifest.py:render_manifest")
    assert set(inspect.signature(flow.fn).parameters) == {"manifest", "defaults", *knobs}
    assert set(flow.parameters.properties) == {"manifest", "defaults", *knobs}
    for command in ("run", "serve"):
        shown = CliRunner().invoke(main, [command, "--help"], terminal_width=200).stdout
        assert all(f" {flag(name)} " in shown for name in knobs), command
    for deployment in prefect_yaml["deployments"]:
        given = set(deployment["parameters"]) - {"manifest"}
        assert given == knobs, deployment["name"]
        fixed = {k: v for k, v in deployment["parameters"].items() if k in knobs and "{{" not in str(v)}
        assert RunOptions(**fixed).model_dump(include=set(fixed)) == fixed  # valid, and the defaults


def test_prefect_yaml_environment_is_documented(prefect_yaml: dict[str, Any]) -> None:
    names = set(re.findall(r"\{\{\s*\$(\w+)\s*\}\}", yaml.safe_dump(prefect_yaml)))  # values, not comments
    assert names == {"STYLEBATCH_HOME", "STYLEBATCH_NIGHTLY_MANIFEST", "STYLEBATCH_OUT", "STYLEBATCH_EXECUTOR"}
    scheduling = (REPO_ROOT / "README.md").read_text().partition("## Scheduling")[2].partition("\n## ")[0]
    assert all(name in scheduling for name in names)


def test_pinned_prefect_versions_match_the_lock(prefect_yaml: dict[str, Any], compose: dict[str, Any]) -> None:
    installed = version("prefect")
    assert prefect_yaml["prefect-version"] == installed
    assert compose["services"]["prefect-server"]["image"].startswith(f"prefecthq/prefect:{installed}-")


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"prefect-server", "minio", "dask-scheduler", "dask-cuda-worker", "prefect-worker"} <= set(services)
    ours = {name: s for name, s in services.items() if s.get("image") == "stylebatch-worker:latest"}
    assert set(ours) == {"dask-scheduler", "dask-cuda-worker", "prefect-worker"}
    for name, service in ours.items():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["environment"]["PREFECT_API_URL"] == API_URL, name
        assert service["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000", name
    assert "4200:4200" in services["prefect-server"]["ports"]
    assert "--host 0.0.0.0" in services["prefect-server"]["command"]


def test_compose_cuda_workers_declare_one_gpu_resource_each(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["dask-cuda-worker"]
    assert worker["command"].split()[:4] == ["dask", "cuda", "worker", "tcp://dask-scheduler:8786"]
    assert "--resources GPU=1" in worker["command"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert services["dask-scheduler"]["command"] == "dask scheduler"
    assert "8786:8786" in services["dask-scheduler"]["ports"]


def test_compose_prefect_worker_uses_the_dask_scheduler(compose: dict[str, Any], prefect_yaml: dict[str, Any]) -> None:
    worker = compose["services"]["prefect-worker"]
    assert worker["environment"]["STYLEBATCH_EXECUTOR"] == "tcp://dask-scheduler:8786"
    assert worker["environment"]["PREFECT_API_URL"] == API_URL  # the merge key kept the shared environment
    pool = prefect_yaml["deployments"][0]["work_pool"]["name"]
    assert f"--pool {pool}" in worker["command"]
    assert {"prefect-server", "dask-scheduler"} <= set(worker["depends_on"])


def test_dockerfile_installs_the_gpu_cluster_extra_from_the_lock(dockerfile: str) -> None:
    syncs = [line for line in dockerfile.splitlines() if re.match(r"RUN\s+uv sync\b", line.strip())]
    assert syncs
    assert all("--locked" in s and "--extra gpu-cluster" in s and "--no-dev" in s for s in syncs)
    assert re.search(r"^COPY .*\bpyproject\.toml\b.*\buv\.lock\b", dockerfile, re.M)
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    assert {"dask-cuda", "prefect-dask", "distributed"} <= {p["name"] for p in lock["package"]}


def test_dockerfile_copies_every_package(dockerfile: str) -> None:
    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "packages"
    ]
    copied = {m[0] for m in re.findall(r"^COPY\s+(\S+)\s+\./(\S+)", dockerfile, re.M) if m[0] == m[1].rstrip("/")}
    assert set(packages) <= copied
    assert all((REPO_ROOT / package).is_dir() for package in packages)
    # The last sync (with the project) comes after the code it installs.
    last_copy = max(dockerfile.index(f"COPY {p} ") for p in packages)
    assert dockerfile.rindex("uv sync") > last_copy
    assert "stylebatch-gpu" in dockerfile.rpartition("CMD")[2]
