"""The wire-contract stubs are current, and the project works from an installed wheel (not only the repo root)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from splitproof.protos.generate import GENERATED, generate

REPO = Path(__file__).resolve().parent.parent


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(GENERATED)
    stale = [name for name in GENERATED
             if (tmp_path / name).read_bytes() != (REPO / "protos" / name).read_bytes()]
    assert not stale, f"protos/{', '.join(stale)} differ from protos/demo.proto: run `make protos` and commit"


def test_stubs_speak_the_upstream_contract() -> None:
    from splitproof.protos import demo_pb2

    assert demo_pb2.DESCRIPTOR.package == "hipstershop"
    services = demo_pb2.DESCRIPTOR.services_by_name
    assert services["RecommendationService"].methods_by_name["ListRecommendations"].full_name == \
        "hipstershop.RecommendationService.ListRecommendations"
    assert set(services["ProductCatalogService"].methods_by_name) == {"ListProducts", "GetProduct", "SearchProducts"}
    fields = {m: {f.name: f.number for f in demo_pb2.DESCRIPTOR.message_types_by_name[m].fields}
              for m in ("ListRecommendationsRequest", "ListRecommendationsResponse", "Product", "Money")}
    assert fields["ListRecommendationsRequest"] == {"user_id": 1, "product_ids": 2}
    assert fields["ListRecommendationsResponse"] == {"product_ids": 1}
    assert fields["Product"] == {"id": 1, "name": 2, "description": 3, "picture": 4, "price_usd": 5, "categories": 6}
    assert fields["Money"] == {"currency_code": 1, "units": 2, "nanos": 3}


# ---------------------------------------------------------------- installed wheel


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_packaged_under_the_splitproof_name() -> None:
    config = _setuptools_config()
    folders = {"splitproof." + ".".join(init.parent.relative_to(REPO).parts)
               for top in config["package-dir"].values() for init in (REPO / top).rglob("__init__.py")}
    assert folders == set(config["packages"]), "pyproject's [tool.setuptools] packages must list every package folder"
    assert config["package-dir"] == {f"splitproof.{top}": top for top in ("protos", "verifier", "setup", "loadtest")}


def _source_copy(dest: Path) -> Path:
    """Copy what the wheel is built from (the mapped package folders) so the build never touches the repo."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for top in _setuptools_config()["package-dir"].values():
        shutil.copytree(REPO / top, dest / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _setuptools_builds_wheels() -> bool:
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel and install it with --target; returns the install directory."""
    root = tmp_path_factory.mktemp("wheel")
    src = _source_copy(root / "src")
    dist, site = root / "dist", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # Offline and fast with this venv's setuptools when it can build wheels by itself (>= 70.1), else isolated.
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    subprocess.run([*pip, "wheel", "--no-deps", *isolation, str(src), "-w", str(dist)],
                   check=True, capture_output=True, timeout=120)
    wheels = list(dist.glob("splitproof-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheels[0])],
                   check=True, capture_output=True, timeout=120)
    return site


def _run_from(site: Path, cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with only the installed wheel importable for our packages (cwd away from the repo)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


IMPORT_CHECK = """
import importlib.util, json
import splitproof.protos as protos, splitproof.verifier as verifier, splitproof.setup as setup
import splitproof.setup.cli, splitproof.setup.boutique.launcher as launcher, splitproof.verifier.inputs.attribution
from splitproof.protos import demo_pb2, demo_pb2_grpc
from importlib import resources
print(json.dumps({
    "files": [m.__file__ for m in (protos, verifier, setup, demo_pb2, demo_pb2_grpc, launcher)],
    "proto": resources.files("splitproof.protos").joinpath("demo.proto").is_file(),
    "templates": sorted(p.name for p in resources.files("splitproof.setup").joinpath("templates").iterdir())
                 if resources.files("splitproof.setup").joinpath("templates").is_dir() else [],
    "generic_names": [name for name in ("setup", "protos", "verifier", "loadtest")
                      if importlib.util.find_spec(name) is not None],
}))
"""


def test_packages_import_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    result = _run_from(installed, tmp_path, IMPORT_CHECK)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    for path in info["files"]:
        assert Path(path).resolve().is_relative_to(installed.resolve()), f"imported from {path}, not the wheel"
    assert info["proto"] is True
    assert info["generic_names"] == [], "the wheel must not install generic top-level import names"
    templates = {p.name for p in (REPO / "setup" / "templates").iterdir() if p.is_file()}
    missing = templates - set(info["templates"])
    assert not missing, f"the wheel lacks setup/templates/{sorted(missing)}: fix [tool.setuptools.package-data]"
    entry_points = next(installed.glob("splitproof-*.dist-info")).joinpath("entry_points.txt").read_text()
    assert "canary-setup = splitproof.setup.cli:main" in entry_points
    assert "verify-split = splitproof.verifier.cli:main" in entry_points


def test_canary_setup_help_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    result = _run_from(installed, tmp_path, "from splitproof.setup.cli import main; main(['--help'])")
    assert result.returncode == 0, result.stderr
    assert "usage: canary-setup" in result.stdout
    for command in ("serve", "demo"):
        assert command in result.stdout, f"canary-setup --help does not list {command!r}"
    result = _run_from(installed, tmp_path,
                       "from splitproof.setup.cli import main; main(['serve', 'frontend', '--help'])")
    assert result.returncode == 0 and "--recommendation-addr" in result.stdout, result.stderr


def test_verify_split_help_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    # pyproject declares `verify-split = splitproof.verifier.cli:main`: the module must exist and answer --help.
    result = _run_from(installed, tmp_path, "from splitproof.verifier.cli import main; main(['--help'])")
    assert result.returncode == 0, f"verify-split --help failed from the wheel:\n{result.stderr}"
    assert "usage: verify-split" in result.stdout
