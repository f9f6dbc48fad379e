"""Wire compatibility with the real Online Boutique (GoogleCloudPlatform/microservices-demo), both directions.

- A client generated from the upstream ``protos/demo.proto`` gets 5 valid ids from our recommendationservice.
- The upstream Python recommendationservice (``src/recommendationservice/recommendation_server.py``), pointed at our
  productcatalog, returns 5 valid ids to our client.

Runs only when ``UPSTREAM_MICROSERVICES_DEMO`` points at a checkout of that repository (nothing of it is vendored
here). The second check also needs an interpreter with upstream's ``src/recommendationservice/requirements.txt``
installed: ``UPSTREAM_RECOMMENDATION_PYTHON`` (default: this interpreter, skipped if it lacks those packages).
Each side runs in its own process: both protos register ``hipstershop.*`` in the protobuf descriptor pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup import net, proc
from splitproof.setup.boutique.launcher import Spawned, spawn
from splitproof.verifier.boutique import PRODUCT_IDS

UPSTREAM_ENV = "UPSTREAM_MICROSERVICES_DEMO"
UPSTREAM_PYTHON_ENV = "UPSTREAM_RECOMMENDATION_PYTHON"
REQUESTED = "OLJCESPC7Z"

pytestmark = pytest.mark.skipif(
    not os.environ.get(UPSTREAM_ENV),
    reason=f"set {UPSTREAM_ENV} to a checkout of GoogleCloudPlatform/microservices-demo to run these checks",
)


@pytest.fixture(scope="module")
def upstream() -> Path:
    root = Path(os.environ[UPSTREAM_ENV]).expanduser().resolve()
    # Set but wrong is a failure, not a skip: the user asked for these checks.
    assert (root / "protos" / "demo.proto").is_file(), f"{UPSTREAM_ENV}={root} has no protos/demo.proto"
    return root


@pytest.fixture(scope="module")
def catalog(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Spawned:
    spawned = spawn("catalog", log=tmp_path_factory.mktemp("compat") / "catalog.log")
    request.addfinalizer(spawned.stop)
    return spawned


@pytest.fixture(scope="module")
def recommendation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   catalog: Spawned) -> Spawned:
    spawned = spawn("recommendation", ["--catalog-addr", catalog.addr],
                    log=tmp_path_factory.mktemp("compat") / "recommendation.log")
    request.addfinalizer(spawned.stop)
    return spawned


# ---------------------------------------------------------------- upstream client -> our servers

UPSTREAM_CLIENT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc, demo_pb2, demo_pb2_grpc  # generated from the upstream proto
with grpc.insecure_channel(sys.argv[2]) as channel:
    recs = demo_pb2_grpc.RecommendationServiceStub(channel).ListRecommendations(
        demo_pb2.ListRecommendationsRequest(user_id="upstream-client", product_ids=[sys.argv[4]]), timeout=10)
with grpc.insecure_channel(sys.argv[3]) as channel:
    products = demo_pb2_grpc.ProductCatalogServiceStub(channel).ListProducts(demo_pb2.Empty(), timeout=10)
print(json.dumps({
    "recommended": list(recs.product_ids),
    "products": [[p.id, p.price_usd.currency_code, p.price_usd.units, p.price_usd.nanos] for p in products.products],
}))
"""


def test_upstream_generated_client_gets_five_ids_from_our_recommendationservice(
        upstream: Path, catalog: Spawned, recommendation: Spawned, tmp_path: Path) -> None:
    from grpc_tools import protoc

    stubs = tmp_path / "upstream_stubs"
    stubs.mkdir()
    code = protoc.main(["grpc_tools.protoc", f"-I{upstream / 'protos'}", f"--python_out={stubs}",
                        f"--grpc_python_out={stubs}", str(upstream / "protos" / "demo.proto")])
    assert code == 0 and (stubs / "demo_pb2_grpc.py").is_file()
    result = subprocess.run([sys.executable, "-c", UPSTREAM_CLIENT, str(stubs), recommendation.addr, catalog.addr,
                             REQUESTED], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    ids = answer["recommended"]
    assert len(ids) == 5 and len(set(ids)) == 5, ids
    assert set(ids) <= set(PRODUCT_IDS) and REQUESTED not in ids
    assert [p[0] for p in answer["products"]] == list(PRODUCT_IDS)
    assert answer["products"][0][1:] == ["USD", 19, 990_000_000]


# ---------------------------------------------------------------- upstream recommendationservice -> our catalog

# Runs upstream's server unmodified except that the port it binds is moved from [::] to 127.0.0.1
# (the project's servers -- and the servers its tests start -- bind loopback only).
LOOPBACK_RUNNER = """
import runpy, sys
import grpc

_server = grpc.server

class _LoopbackServer:
    def __init__(self, inner):
        self._inner = inner
    def add_insecure_port(self, address):
        return self._inner.add_insecure_port("127.0.0.1:" + address.rsplit(":", 1)[1])
    def __getattr__(self, name):
        return getattr(self._inner, name)

grpc.server = lambda *args, **kwargs: _LoopbackServer(_server(*args, **kwargs))
script = sys.argv[1]
sys.path.insert(0, script.rsplit("/", 1)[0])
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""

UPSTREAM_DEPS_PROBE = "import grpc, grpc_health, pythonjsonlogger, google.auth, opentelemetry.instrumentation.grpc"


@pytest.fixture(scope="module")
def upstream_python() -> str:
    python = os.environ.get(UPSTREAM_PYTHON_ENV) or sys.executable
    probe = subprocess.run([python, "-c", UPSTREAM_DEPS_PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"{python} lacks upstream recommendationservice's dependencies; set {UPSTREAM_PYTHON_ENV} to "
                    "a throwaway venv with src/recommendationservice/requirements.txt installed")
    return python


@pytest.fixture(scope="module")
def upstream_recommendation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                            upstream: Path, upstream_python: str, catalog: Spawned) -> str:
    script = upstream / "src" / "recommendationservice" / "recommendation_server.py"
    assert script.is_file(), f"{script} missing"
    port = net.free_port()
    log = tmp_path_factory.mktemp("compat") / "upstream-recommendation.log"
    env = {"PORT": str(port), "PRODUCT_CATALOG_SERVICE_ADDR": catalog.addr, "DISABLE_PROFILER": "1"}
    env.pop("ENABLE_TRACING", None)
    child = proc.spawn([upstream_python, "-c", LOOPBACK_RUNNER, str(script)], env=env, log=log)
    request.addfinalizer(lambda: proc.stop(child))
    addr = f"127.0.0.1:{port}"
    proc.wait_until(lambda: net.grpc_healthy(addr) or child.poll() is not None, 60, "upstream recommendationservice")
    assert child.poll() is None, f"upstream recommendationservice exited:\n{log.read_text()[-2000:]}"
    return addr


def test_upstream_recommendationservice_on_our_catalog_returns_five_valid_ids(upstream_recommendation: str) -> None:
    with grpc.insecure_channel(upstream_recommendation) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)  # our stubs, their server
        for requested in PRODUCT_IDS:
            resp = stub.ListRecommendations(
                demo_pb2.ListRecommendationsRequest(user_id="ours", product_ids=[requested]), timeout=10)
            ids = list(resp.product_ids)
            assert len(ids) == 5 and len(set(ids)) == 5, ids
            assert set(ids) <= set(PRODUCT_IDS) and requested not in ids
        resp = stub.ListRecommendations(
            demo_pb2.ListRecommendationsRequest(user_id="ours", product_ids=list(PRODUCT_IDS[:5])), timeout=10)
        assert sorted(resp.product_ids) == sorted(PRODUCT_IDS[5:])  # same 4-left behaviour as ours
