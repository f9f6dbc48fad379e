"""The expected split: an ordered, immutable {version: fraction} -- the input every judge takes.

Built from Istio-style weights (integers from 0 to 100 summing to 100; the parsing and range checks are
:mod:`verifier.istio`'s, so ``canary-setup`` and ``verify-split`` accept exactly the same spellings): ``--expected
P`` (:func:`from_canary_percent`), ``--weights a=80,b=20`` (:func:`from_weights_spec`), or a VirtualService
(:mod:`verifier.inputs.virtualservice`). Every bad input raises :class:`InputError` (a ValueError) whose message is
one line fit for the user.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from splitproof.verifier import fmt
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import canary_weights, parse_weights, validate_weights


class Expected(Mapping[str, float]):
    """An ordered, immutable {version: fraction}; the fractions are >= 0 and sum to 1.

    ``weights`` keeps the integer percentages when the split came from Istio-style weights.
    """

    __slots__ = ("_fractions", "weights", "source")

    def __init__(self, fractions: Mapping[str, float], *, weights: Mapping[str, int] | None = None,
                 source: str = "") -> None:
        checked = check_fractions(fractions)
        self._fractions: dict[str, float] = checked
        self.weights: dict[str, int] | None = dict(weights) if weights is not None else None
        self.source = source

    @classmethod
    def from_weights(cls, weights: Mapping[str, int], *, source: str = "",
                     subsets: Mapping[str, Any] | None = None) -> Expected:
        """Istio weights (integers summing to 100) -> Expected. ``subsets``: names that must exist."""
        try:
            validate_weights(weights, subsets)
        except InputError as exc:
            raise InputError(str(exc)) from None
        return cls({k: v / 100 for k, v in weights.items()}, weights=weights, source=source)

    def __getitem__(self, key: str) -> float:
        return self._fractions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fractions)

    def __len__(self) -> int:
        return len(self._fractions)

    def __repr__(self) -> str:
        return f"Expected({self.describe()})"

    def percent(self, version: str) -> float:
        return 100.0 * self._fractions[version]

    def describe(self) -> str:
        """``production=80%,canary=20%``."""
        return ",".join(f"{k}={fmt.share(v)}" for k, v in self._fractions.items())


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate {version: fraction}: at least one version, names non-empty, each in [0, 1], sum 1."""
    if not fractions:
        raise InputError("the expected split names no version")
    out: dict[str, float] = {}
    for name, value in fractions.items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"bad version name {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"expected share of {name!r} must be a number, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise InputError(f"expected share of {name!r} must be between 0 and 1, got {value!r}")
        out[name] = float(value)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-9:
        raise InputError(f"expected shares must sum to 1 (100%), got {total:g}")
    return out


def as_expected(expected: Mapping[str, float]) -> Expected:
    """Accept an Expected or any {version: fraction} mapping (validated)."""
    return expected if isinstance(expected, Expected) else Expected(expected)


# --------------------------------------------------------------------------------------------------- CLI inputs


def from_canary_percent(text: str | int, *, production: str = "production", canary: str = "canary") -> Expected:
    """``--expected 20`` -> production=80%, canary=20%."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InputError(f"--expected must be an integer percentage from 0 to 100, got {text!r}") from None
    try:
        weights = canary_weights(value)
    except InputError as exc:
        raise InputError(f"--expected: {exc}") from None
    return Expected.from_weights({production: weights["production"], canary: weights["canary"]},
                                 source=f"--expected {value}")


def from_weights_spec(spec: str) -> Expected:
    """``--weights production=80,canary=20`` (any number of subsets, integers summing to 100)."""
    try:
        weights = parse_weights(spec)
    except InputError as exc:
        raise InputError(f"--weights: {exc}") from None
    return Expected.from_weights(weights, source=f"--weights {spec}")


def check_attributable(expected: Mapping[str, float], producible: Iterable[str]) -> None:
    """Every version with a positive expected share must be something the attribution can produce."""
    known = set(producible)
    missing = [v for v, share in expected.items() if share > 0 and v not in known]
    if missing:
        raise InputError(f"the expected split names subsets no response can be attributed to: {', '.join(missing)} "
                         f"(known: {', '.join(sorted(known))}; map them with --class NAME=COUNT or use --header)")
