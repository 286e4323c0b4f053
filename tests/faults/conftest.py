"""Fixtures of the fault suite: environments for real ``stylebatch`` processes, and a check for stray servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.faults_helpers import assert_no_stray_server
from tests.scale.scale_helpers import base_env


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PREFECT_HOME for every embedded run of the suite, as a user has one (its database stays migrated)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def embedded_env(prefect_home: Path) -> dict[str, str]:
    """No PREFECT_API_URL: ``stylebatch run`` starts (and must stop) a temporary server of its own."""
    return base_env(prefect_home)


@pytest.fixture
def harness_env(prefect_api: str, tmp_path: Path) -> dict[str, str]:
    """The session's Prefect test server as the configured API: no temporary server (for speed)."""
    return base_env(tmp_path / "prefect-home", PREFECT_API_URL=prefect_api)


@pytest.fixture(autouse=True)
def no_stray_server() -> Iterator[None]:
    """Every scenario ends with no temporary Prefect server left running without its run."""
    assert_no_stray_server()
    yield
    assert_no_stray_server()


@pytest.fixture
def env_with(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """``env_with(env, **values)``: a copy of ``env`` with more variables."""

    def extend(env: dict[str, str], **values: str) -> dict[str, str]:
        return {**env, **values}

    return extend
