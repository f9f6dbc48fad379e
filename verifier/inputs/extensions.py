"""The optional C extensions of this package: a function from one of them, or None where it was not built.

pyproject.toml builds ``_scan``, ``_markup`` and ``_line`` as optional extensions: an install without a C compiler
still succeeds, and each caller then takes its Python path, which gives the same results, slower (the tests compare
both, and fail if a compiler is present but an extension was not built).
"""

from __future__ import annotations

import importlib
from typing import Any


def optional(module: str, name: str) -> Any:
    """``splitproof.verifier.inputs.<module>.<name>``, or None when that extension is not built (or was built from
    an older source that lacks ``name``)."""
    try:
        return getattr(importlib.import_module(f"splitproof.verifier.inputs.{module}"), name)
    except (ImportError, AttributeError):
        return None
