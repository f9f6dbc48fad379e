"""Helpers shared by the test modules (fixtures live in conftest.py and use these).

- the installed console scripts, run as a user runs them (``run_installed``) or in-process with their output
  captured (``in_process``);
- a boutique service started for a fixture and stopped by its finalizer (``start_service``);
- a working directory full of same-named modules, to prove no child imports from the caller's cwd (``decoys``);
- a fake HTTP server (a handler class) on 127.0.0.1, an ephemeral port, always shut down (``http_server``), and
  its handlers' JSON answer (``send_json``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from splitproof.setup.boutique.launcher import Spawned, spawn
from splitproof.setup.net import free_port

__all__ = ["BIN", "PYTHON", "REPO", "decoys_hit", "free_port", "http_server", "in_process", "installed",
           "make_decoys", "run_installed", "send_json", "start_service"]

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
RUN_TIMEOUT_S = 120.0  # a hang guard for a command under test, not a timing assertion


def installed(name: str) -> str:
    """The console script ``name`` of this environment (canary-setup, verify-split, kubectl)."""
    return str(BIN / name)


def run_installed(name: str, *args: str, timeout: float = RUN_TIMEOUT_S, check: bool = False,
                  **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run an installed command as a user does (text output captured); with ``check``, exit 0 is asserted."""
    done = subprocess.run([installed(name), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def in_process(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str],
               *argv: str) -> tuple[int, str, str]:
    """Run a command's ``main(argv)`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def start_service(request: pytest.FixtureRequest, logs: Path, name: str, service: str, args: Sequence[str],
                  env: dict[str, str] | None = None) -> Spawned:
    """Spawn a boutique service on an ephemeral port; stopped by ``request``'s finalizer (its fixture's scope)."""
    spawned = spawn(service, args, log=logs / f"{name}.log", env=env)
    request.addfinalizer(spawned.stop)
    return spawned


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


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], **attributes: object) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (an ephemeral port) from a thread; yields the base URL; always shut down.

    ``attributes`` are set on the server before it starts (handlers read them as ``self.server.NAME``).
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send_body(handler: BaseHTTPRequestHandler, code: int, data: bytes, content_type: str,
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
    """Answer ``handler``'s request with ``code`` and ``data`` (Content-Type and Content-Length set, plus
    ``headers``). ``length``: a Content-Length other than the data's (a body that breaks off)."""
    handler.send_response(code)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data) if length is None else length))
    handler.end_headers()
    handler.wfile.write(data)


def send_json(handler: BaseHTTPRequestHandler, code: int, body: object) -> None:
    """Answer ``handler``'s request with ``code`` and ``body`` as JSON (Content-Length set)."""
    send_body(handler, code, json.dumps(body).encode(), "application/json")


def require_built(module: str, built: bool, fallback: str) -> None:
    """An optional C extension (``module``, built at install where a compiler is): fail when a C compiler and the
    Python headers are here but it was not built; skip, saying what is used instead, when they are not."""
    if built:
        return
    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if (shutil.which("cc") or shutil.which("gcc")) and headers:
        pytest.fail(f"a C compiler and Python.h are here but {module} was not built: reinstall (make venv) and read "
                    "pip's build output")
    pytest.skip(f"no C compiler or Python headers: {fallback}")
