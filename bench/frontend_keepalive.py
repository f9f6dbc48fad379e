"""Frontend product pages per second over one HTTP/1.1 keep-alive connection: Nagle on (baseline) vs off (shipped).

Why: a Python ``http.server`` writes headers and body in two sends; with Nagle on, the second waits for the
client's delayed ACK (~40 ms), so keep-alive traffic (Envoy, Locust) crawls. The shipped handler sets
``disable_nagle_algorithm = True``. Each page makes one real ListRecommendations call (catalog + recommendation
run as child processes). Run: ``.venv/bin/python bench/frontend_keepalive.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from pathlib import Path

from splitproof.setup import proc
from splitproof.setup.boutique.launcher import Spawned, spawn
from splitproof.verifier.inputs.attribution import count_recommendations

PRODUCT = "OLJCESPC7Z"


def pages_per_second(port: int, seconds: float) -> tuple[float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Cookie": "shop_session-id=bench"}
    done = 0
    bad = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        conn.request("GET", f"/product/{PRODUCT}", headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200 or count_recommendations(body) != 4:
            bad += 1
        done += 1
    elapsed = time.monotonic() - start
    conn.close()
    return done / elapsed, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        cat = spawn("catalog", log=logs / "catalog.log")
        rec = spawn("recommendation", ["--catalog-addr", cat.addr], log=logs / "rec.log")
        results: dict[str, tuple[float, int]] = {}
        try:
            for label, nagle_off in (("nagle on (baseline)", False), ("nagle off (shipped)", True)):
                code = ("import sys; from splitproof.setup.boutique.frontend import server; "
                        f"server.FrontendHandler.disable_nagle_algorithm = {nagle_off}; "
                        "from splitproof.setup.boutique.serve import main; sys.exit(main(sys.argv[1:]))")
                fe = _spawn_code(code, cat.addr, rec.addr, logs / f"fe-{nagle_off}.log")
                try:
                    results[label] = pages_per_second(fe.port, args.seconds)
                finally:
                    fe.stop()
        finally:
            rec.stop()
            cat.stop()
    base = results["nagle on (baseline)"][0]
    for label, (rate, bad) in results.items():
        print(f"{label:22s} {rate:8.1f} pages/s  x{rate / base:5.1f}  bad pages: {bad}")
    return 0


def _spawn_code(code: str, catalog: str, recs: str, log: Path) -> Spawned:
    """launcher.spawn of the frontend, running ``code`` (which patches the handler class) instead of
    ``-m splitproof.setup.boutique``: the same READY line, the same stop."""
    argv = proc.python_argv("-c", code, "frontend", "--port", "0", "--catalog-addr", catalog,
                            "--recommendation-addr", recs)
    return spawn("frontend", argv=argv, log=log)


if __name__ == "__main__":
    sys.exit(main())
