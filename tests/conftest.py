"""Fixtures shared by the test modules (helpers: tests/helpers.py). Integration tests start real processes on
127.0.0.1 ephemeral ports and always stop them; the modules that do are marked ``slow`` here (``make test-fast``
runs the others)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import PYTHON, REPO, decoys_hit, free_port, make_decoys, start_service

from splitproof.setup.boutique.launcher import Spawned

if TYPE_CHECKING:  # the mesh is imported only by the tests that start it
    from splitproof.setup.mesh import LocalMesh

__all__ = ["PYTHON", "REPO", "decoys_hit", "free_port", "make_decoys", "start_service"]

# Test modules that start real processes (boutique services, Envoy, Locust, Prometheus, Chromium, the installed
# commands, the recorded fakes on PATH): every test in them is ``slow``. tests/test_setup_architecture.py fails
# when a module that starts processes is missing here.
REAL_PROCESS_MODULES = frozenset({
    "test_bad_inputs", "test_boutique", "test_boutique_faults", "test_child_processes", "test_cluster_manifests",
    "test_cluster_steps", "test_cluster_up", "test_demo", "test_htmlreport", "test_loadtest_locust",
    "test_loadtest_units", "test_mesh", "test_mesh_faults", "test_health_mesh", "test_health_prometheus", "test_protos",
    "test_sampler_e2e", "test_dispatch_order_mesh",
    "test_telemetry_envoy",
    "test_telemetry_envoy_prometheus", "test_telemetry_prometheus", "test_upstream_compat", "test_verifier_cli",
    "test_setup_exit_codes", "test_proc", "test_verifier_architecture", "test_verify_split_exit_codes",
    "test_verify_split_telemetry", "test_mesh_telemetry", "test_rollout_mesh", "test_rollout_cluster",
    "test_rollout_prometheus", "test_mesh_gateway_api", "test_cluster_gateway_api", "test_verify_split_gateway_api",
    "test_stopsignals", "test_bench_cli",
})
LAB_WEIGHTS = {"production": 80, "canary": 20}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).stem in REAL_PROCESS_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def decoy_dir(tmp_path: Path) -> Path:
    return make_decoys(tmp_path / "decoys")


@pytest.fixture(autouse=True)
def _no_gevent_in_the_test_process(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Importing Locust (or the locustfile) gevent-monkey-patches the whole process: threads silently become
    greenlets and a later test that blocks in gRPC hangs the session. Tests must import them in a child process."""
    yield
    if "gevent.monkey" in sys.modules or "locust" in sys.modules:
        pytest.fail(f"{request.node.nodeid} imported locust/gevent into the test process; run it in a child process",
                    pytrace=False)


# ------------------------------------------------------------------ the lab's mesh (real Envoy, real services)


@pytest.fixture(scope="session")
def _session_mesh() -> Iterator[LocalMesh]:
    from splitproof.setup.manifests import CanaryParams
    from splitproof.setup.mesh import LocalMesh

    with LocalMesh(CanaryParams(weights=dict(LAB_WEIGHTS))) as running:
        yield running


@pytest.fixture
def mesh(_session_mesh: LocalMesh) -> Iterator[LocalMesh]:
    """The lab's topology on a real Envoy at 80/20 (ingress -> frontend -> weighted recommendationservice),
    started once per session and shared by the modules that only read it. A test may change the weights: they
    are put back afterwards. A module that changes anything else (crashes, other params) starts its own."""
    yield _session_mesh
    if dict(_session_mesh.params.weights) != LAB_WEIGHTS:
        _session_mesh.set_weights(LAB_WEIGHTS)


# ------------------------------------------------------------------ a cluster, through the recorded fakes


@pytest.fixture(scope="session")
def finished_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fake cluster's state after `canary-setup up --provider kind` (tests/fakes: run once per session);
    a test loads a copy into its own FakeCluster."""
    from fakes.harness import FakeCluster

    from splitproof.setup.cli import main

    with pytest.MonkeyPatch.context() as mp:
        fake = FakeCluster(tmp_path_factory.mktemp("finished"), mp)
        assert main(["up", "--provider", "kind", "--canary-image", "registry.example/reco:canary"]) == 0
        return fake.world()


# ------------------------------------------------------------------ local boutique services (real processes)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="module")
def catalog(request: pytest.FixtureRequest, logs: Path) -> Spawned:
    return start_service(request, logs, "catalog", "catalog", [])


@pytest.fixture(scope="module")
def production(request: pytest.FixtureRequest, logs: Path, catalog: Spawned) -> Spawned:
    return start_service(request, logs, "production", "recommendation", ["--catalog-addr", catalog.addr])


@pytest.fixture(scope="module")
def canary(request: pytest.FixtureRequest, logs: Path, catalog: Spawned) -> Spawned:
    # The canary is the same code with MAX_RESPONSES=2, given the upstream way: by environment.
    return start_service(request, logs, "canary", "recommendation", [],
                         env={"MAX_RESPONSES": "2", "PRODUCT_CATALOG_SERVICE_ADDR": catalog.addr})
