"""Instructions per call of each piece of ShopperUser.product_page after its request, counted by callgrind.

    python -m bench.loadgen_pieces [--calls 10000] [--branches] [piece ...]

Each piece runs ``--calls`` times inside one ``eval`` in a child under valgrind's callgrind, collected only inside
``eval`` (``--toggle-collect=builtin_eval``) and dumped after each (``--dump-after=builtin_eval``): start-up is not
counted, and an empty loop run the same way is subtracted. The page is the local frontend's product page
(setup/boutique/frontend/pages.py, four recommendations); the recorder has a real memory-mapped writer and the live
gate of ``--expected 20``, as in a Locust run. Instruction counts are deterministic where timings on a shared host
are not; inside Locust the same code costs more (it runs with the caches full of Locust's state): this finds where
the cost is, ``python -m bench.loadgen --instructions`` says what a run pays.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from argparse import Namespace
from pathlib import Path
from typing import Any

from splitproof.setup.proc import python_argv

THIS = str(Path(__file__).resolve())
PIECES = ("session", "classify", "count", "record", "add", "write", "line", "append", "observe", "rest")


def product_page() -> bytes:
    from splitproof.setup.boutique.catalog import PRODUCTS
    from splitproof.setup.boutique.frontend.pages import PageContext, render_product

    ctx = PageContext(session_id="752afa1b-9aeb-4a68-9fea-2a8235eb3141", currency="USD", cart_size=0)
    return render_product(PRODUCTS[0], PRODUCTS[1:5], PRODUCTS[5], ctx).encode()


def pieces(workdir: Path) -> dict[str, Any]:
    """The callables, in a process that may import Locust (the Locust file installs its plugin)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "loadtest"))
    import boutique  # type: ignore[import-not-found]  # noqa: F401 -- the real Locust file: its plugin installed

    from splitproof.loadtest import plugin
    from splitproof.loadtest.live import LiveSplit
    from splitproof.loadtest.options import config_from_options
    from splitproof.loadtest.recording import SplitRecorder, open_results
    from splitproof.verifier.inputs import attribution as attribution_module
    from splitproof.verifier.inputs.classify import product_page_outcome

    page = product_page()
    results = workdir / "out.jsonl"
    config = config_from_options(Namespace(expected="20", split_results=str(results)))
    recorder = SplitRecorder("local", open_results(results, False))
    live = LiveSplit(config)
    recorder.observers.append(live.observe_response)
    user = types.SimpleNamespace(_splitproof_session=plugin.SplitSession(config, recorder))
    attribution = config.attribution
    outcome = product_page_outcome(200, page, attribution, None)
    record = outcome.record(time.time(), 1.5, "ShopperUser")
    line = record.to_line()
    resp = types.SimpleNamespace(status_code=200, headers={}, content=page,
                                 request_meta={"response_time": 1.5, "start_time": 1764000000.5, "exception": None})
    count = attribution_module.count_recommendations
    writer = recorder.writer
    assert writer is not None

    def session() -> None:
        plugin.user_session(user).recorder.dispatch()

    def rest() -> None:  # what product_page itself does around the pieces
        _url = f"/product/{'OLJCESPC7Z'}"
        status = resp.status_code
        _headers = dict(resp.headers or {}) if attribution.header is not None else None
        meta = resp.request_meta
        _ok = status and status < 400 and outcome.failure is None and meta["exception"] is None
        _body = resp.content
        latency_ms = float(meta["response_time"])
        start_time = meta["start_time"]
        _t = start_time + latency_ms / 1000.0, type(user).__name__

    return {
        "empty": lambda: None,
        "session": session,
        "classify": lambda: product_page_outcome(200, page, attribution, None),
        "count": lambda: count(page),
        "record": lambda: outcome.record(1764000000.5, 1.5, "ShopperUser"),
        "add": lambda: recorder.add(record, recorder.dispatch()),
        "write": lambda: writer.write(record),
        "line": record.to_line,
        "append": lambda: writer._file.append(line),  # type: ignore[union-attr]
        "observe": lambda: live.observe_response("production", None),
        "rest": rest,
    }


def child(calls: int, names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pieces-") as tmp:
        table = pieces(Path(tmp))
        for name in ["empty", *names]:
            fn = table[name]
            # the measured region; each result dropped at once, as a Locust run drops it (a list of them kept
            # every record alive, and the collector's passes over them were counted against the pieces after)
            eval("all(fn() is not stop for _ in range(calls))",  # noqa: S307
                 {"fn": fn, "calls": calls, "stop": object()})


EVENTS = {"Ir": "instructions", "Bcm": "mispredicted conditional branches",
          "Bim": "mispredicted indirect branches"}


def measure(calls: int, names: list[str], branches: bool = False) -> dict[str, dict[str, float]]:
    """{piece: {event: count per call}}, the empty loop's subtracted: instructions ("Ir"), and with ``branches``
    callgrind's simulated branch mispredictions ("Bcm", "Bim": its simple predictor, not the CPU's -- where they
    fall, not what they cost)."""
    with tempfile.TemporaryDirectory(prefix="bench-pieces-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        argv = ["valgrind", "--tool=callgrind", *(["--branch-sim=yes"] if branches else []), "--collect-atstart=no",
                "--toggle-collect=builtin_eval", "--dump-after=builtin_eval", f"--callgrind-out-file={out}",
                *python_argv(THIS, "--child", "--calls", str(calls), *names)]
        # one BLAS thread: numpy's pool would spin under valgrind, which runs threads one at a time
        done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"valgrind child failed ({done.returncode}): {done.stderr[-2000:]}")

        def totals(path: Path) -> dict[str, int]:
            text = path.read_text()
            events = re.search(r"^events: (.*)$", text, re.M)
            match = re.search(r"^(?:totals|summary): (.*)$", text, re.M)
            if events is None or match is None:
                return {}
            return dict(zip(events.group(1).split(), (int(x) for x in match.group(1).split()), strict=False))

        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        # start-up's own evals (namedtuple, dataclasses) dump too: ours are the last ones before the final dump
        ours = [totals(p) for p in dumps[-len(names) - 1:]]
    empty = ours[0]
    return {name: {event: (ours[i + 1].get(event, 0) - empty.get(event, 0)) / calls for event in EVENTS
                   if event in empty} for i, name in enumerate(names)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--branches", action="store_true",
                        help="also count callgrind's simulated branch mispredictions per call (--branch-sim=yes)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("pieces", nargs="*", metavar="piece", help=f"some of: {' '.join(PIECES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.pieces) - set(PIECES))
    if unknown:
        parser.error(f"unknown piece(s): {', '.join(unknown)}")
    args.pieces = args.pieces or list(PIECES)
    if args.child:
        child(args.calls, args.pieces)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: valgrind): instruction counts skipped")
        return 0
    counts = measure(args.calls, args.pieces, args.branches)
    events = [e for e in EVENTS if all(e in c for c in counts.values())]
    print(f"| {time.strftime('%Y-%m-%d')}: piece of product_page (per call, callgrind, {args.calls:,} calls) | "
          + " | ".join(EVENTS[e] for e in events) + " |")
    print("| --- |" + " --- |" * len(events))
    for name, per_call in counts.items():
        print(f"| {name} | " + " | ".join(f"{per_call[e]:,.0f}" for e in events) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
