"""Shared test helpers. Integration tests start real processes on 127.0.0.1 ephemeral ports and always stop them."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from splitproof.setup.boutique.launcher import Spawned, spawn

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


# ------------------------------------------------------------ a working directory full of same-named modules

# What a user's folder may hold: another project's setup.py, a package named like ours or like our imports.
# Each decoy, if imported or executed, appends its name to MARKER (and an import of it then fails).
DECOYS = ("setup.py", "protos/__init__.py", "splitproof/__init__.py", "grpc.py", "yaml.py", "rich.py")
MARKER = "DECOY-IMPORTED"


def make_decoys(folder: Path) -> Path:
    """Fill ``folder`` with the decoys; return it. Run children from it, then assert ``decoys_hit(folder) == []``."""
    for name in DECOYS:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"with open({str(folder / MARKER)!r}, 'a') as fh:\n    fh.write({name!r} + '\\n')\n"
                        f"raise ImportError('decoy {name} from the caller\\'s working directory')\n")
    return folder


def decoys_hit(folder: Path) -> list[str]:
    """The decoys of ``folder`` some process imported or executed."""
    marker = folder / MARKER
    return marker.read_text().split() if marker.exists() else []


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


# ------------------------------------------------------------------ local boutique services (real processes)


def start_service(request: pytest.FixtureRequest, logs: Path, name: str, service: str, args: list[str],
                  env: dict[str, str] | None = None) -> Spawned:
    """Spawn a boutique service on an ephemeral port; stopped by ``request``'s finalizer (its fixture's scope)."""
    spawned = spawn(service, args, log=logs / f"{name}.log", env=env)
    request.addfinalizer(spawned.stop)
    return spawned


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
