"""Reading untrusted YAML (verifier/safeyaml.py) against PyYAML's plain pure-Python loader, in one run.

    python -m bench.yaml_input [--mib 7.5] [--update]

File: the lab's mesh documents (Gateway, VirtualServices, DestinationRule), repeated to ``--mib`` MiB -- real Istio
YAML just under the 8 MiB bound. Each reader runs in its own child (wall time, peak RSS of that child):
baseline ``yaml.safe_load_all`` with the pure-Python ``SafeLoader`` (what ``yaml.safe_load`` is without libyaml);
``yaml.load_all`` with libyaml's ``CSafeLoader``; and ``safeyaml.load_documents`` (event scan for the alias / depth
bounds, then ``CSafeLoader``). Then the refusals: a "billion laughs" bomb and a 50 MiB file.
``--update`` replaces the "## Untrusted YAML" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from splitproof.setup.manifests import CanaryParams, mesh_yaml
from splitproof.setup.proc import python_argv

HEADING = "## Untrusted YAML"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

READERS = {
    "yaml.safe_load_all, pure-Python SafeLoader (baseline)":
        "import sys, yaml; docs = list(yaml.load_all(open(sys.argv[1], 'rb').read(), Loader=yaml.SafeLoader))",
    "yaml.load_all, libyaml CSafeLoader":
        "import sys, yaml; docs = list(yaml.load_all(open(sys.argv[1], 'rb').read(), Loader=yaml.CSafeLoader))",
    "safeyaml.read_documents (bounds + CSafeLoader)":
        "import sys; from splitproof.verifier.safeyaml import read_documents; docs = read_documents(sys.argv[1], 'f')",
}
BOMB = "\n".join(["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]) + "\n"


def update_results(section: str) -> None:
    """Replace (or append) this benchmark's section of bench/RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(HEADING)}.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


def child(code: str, path: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS MiB) of one child running ``code`` on ``path``."""
    start = time.perf_counter()
    pid = os.spawnv(os.P_NOWAIT, sys.executable, python_argv("-c", code, str(path)))
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise SystemExit(f"reader failed: {code}")
    return time.perf_counter() - start, usage.ru_maxrss // 1024


def refusal_ms(data: bytes) -> tuple[float, str]:
    from splitproof.verifier.safeyaml import YamlInputError, load_documents

    start = time.perf_counter()
    try:
        load_documents(data, "input")
    except YamlInputError as exc:
        return 1000 * (time.perf_counter() - start), str(exc).split(": ", 1)[1]
    raise SystemExit("not refused")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=float, default=7.5)
    parser.add_argument("--update", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args(argv)
    doc = mesh_yaml(CanaryParams()) + "\n---\n"
    with tempfile.TemporaryDirectory(prefix="splitproof-bench-") as tmp:
        path = Path(tmp) / "mesh.yaml"
        copies = int(args.mib * 2**20 / len(doc.encode()))
        path.write_text(doc * copies)
        size = path.stat().st_size / 2**20
        rows = {name: child(code, path) for name, code in READERS.items()}
    base = next(iter(rows.values()))[0]
    bomb_ms, bomb_why = refusal_ms(BOMB.encode())
    big_ms, big_why = refusal_ms(b"a: 1\n" * (10 << 20))
    for name, (wall, rss) in rows.items():
        print(f"{name}: {wall:.2f} s (x{wall / base:.2f}), peak RSS {rss} MiB")
    print(f"bomb refused in {bomb_ms:.1f} ms ({bomb_why}); 50 MiB refused in {big_ms:.1f} ms")
    if args.update:
        table = "\n".join(f"| {name} | {wall:.2f} s | x{wall / base:.2f} | {rss} MiB |"
                          for name, (wall, rss) in rows.items())
        update_results(f"""{HEADING} (`bench/yaml_input.py`)

Run {dt.date.today().isoformat()} on {describe()}.
File: the lab's mesh documents repeated {copies:,} times ({size:.1f} MiB of real Istio YAML, under the 8 MiB bound);
each reader in its own child process, same run.

| reader | wall time | ratio to baseline | peak RSS |
| --- | --- | --- | --- |
{table}

Refusals (`verifier/safeyaml.py`, in-process): a nine-level "billion laughs" (~600 bytes, 9^9 = 387M nodes expanded)
in {bomb_ms:.1f} ms ("{bomb_why}"); 50 MiB in {big_ms:.2f} ms, before any parsing. Without the
bounds the bomb's error message never finished formatting (past 1.9 GB after 30 s) and 50 MB took 145 s and 650 MB
in the pure-Python loader.
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
