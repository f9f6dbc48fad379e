"""Regenerate the Python stubs for protos/demo.proto: ``python -m splitproof.protos.generate [--out DIR]``.

The stubs are generated as members of the ``splitproof.protos`` package (``from splitproof.protos import
demo_pb2``): protoc derives the import from the .proto's path under its include root, so the file is compiled
from a temporary ``splitproof/protos/demo.proto`` copy, and the outputs are moved into ``--out``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
GENERATED = ("demo_pb2.py", "demo_pb2.pyi", "demo_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run grpcio-tools' protoc; write ``<out_dir>/demo_pb2*.py``. Returns the written files."""
    from grpc_tools import protoc  # imported lazily: grpcio-tools is a dev/test dependency only

    out_dir.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    with tempfile.TemporaryDirectory(prefix="splitproof-protoc-") as tmp:
        root = Path(tmp)
        package = root / "splitproof" / "protos"
        package.mkdir(parents=True)
        shutil.copyfile(PROTO_DIR / "demo.proto", package / "demo.proto")
        argv = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={root}",
            f"--pyi_out={root}",
            f"--grpc_python_out={root}",
            "splitproof/protos/demo.proto",
        ]
        code = protoc.main(argv)
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        written = []
        for name in GENERATED:
            target = out_dir / name
            shutil.copyfile(package / name, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_DIR,
                        help="directory to write demo_pb2*.py into (default: protos/ of this checkout)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
