"""Regenerate the Python stubs for protos/demo.proto: ``python -m protos.generate [--out DIR]``.

The stubs are generated as members of the ``protos`` package (``from protos import demo_pb2``) so
that they import the same way from the repository and from an installed wheel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
GENERATED = ("demo_pb2.py", "demo_pb2.pyi", "demo_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Run grpcio-tools' protoc; write ``<out_root>/protos/demo_pb2*.py``. Returns the written files."""
    from grpc_tools import protoc  # imported lazily: grpcio-tools is a dev/test dependency only

    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / "protos").mkdir(exist_ok=True)
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    argv = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR.parent}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(PROTO_DIR / "demo.proto"),
    ]
    code = protoc.main(argv)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [out_root / "protos" / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_DIR.parent,
                        help="root directory to write protos/demo_pb2*.py under (default: the repository)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
