"""Injected faults of the local mesh's instances: a bad canary (``local up --canary-error-rate/--canary-delay-ms``).

Per version (the ``version`` pod label: ``canary``), the options of ``canary-setup serve recommendation``
(``--error-rate``, ``--error-code``, ``--extra-latency-ms``, ``--fault-seed``; setup.boutique.recommendation) that
every instance of that version is started with -- restarts included, since the supervisor re-runs the same argv.
Kept in the mesh state so ``local status`` shows them. Pure data; validation reuses the server's own parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splitproof.verifier.errors import InputError

CANARY = "canary"


@dataclass(frozen=True)
class InstanceFaults:
    """What one version's instances inject: a percentage of failed calls with a gRPC status, added latency."""

    error_rate: float = 0.0          # percent of calls that fail
    error_code: str = "UNAVAILABLE"  # gRPC status name
    delay_ms: float = 0.0            # added to every call
    seed: int | None = None          # reproducible failure draws

    @property
    def active(self) -> bool:
        return self.error_rate > 0 or self.delay_ms > 0

    def serve_args(self) -> list[str]:
        """The ``serve recommendation`` options that inject these faults."""
        args: list[str] = []
        if self.error_rate > 0:
            args += ["--error-rate", f"{self.error_rate:g}", "--error-code", self.error_code]
        if self.delay_ms > 0:
            args += ["--extra-latency-ms", f"{self.delay_ms:g}"]
        if self.seed is not None and self.error_rate > 0:
            args += ["--fault-seed", str(self.seed)]
        return args

    def describe(self) -> str:
        parts = []
        if self.error_rate > 0:
            parts.append(f"{self.error_rate:g}% of calls fail with {self.error_code}")
        if self.delay_ms > 0:
            parts.append(f"+{self.delay_ms:g} ms per call")
        seeded = f" (seed {self.seed})" if self.seed is not None and self.error_rate > 0 else ""
        return (", ".join(parts) + seeded) if parts else "none"

    def to_json(self) -> dict[str, Any]:
        return {"error_rate": self.error_rate, "error_code": self.error_code, "delay_ms": self.delay_ms,
                "seed": self.seed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InstanceFaults:
        seed = data.get("seed")
        return cls(float(data.get("error_rate") or 0), str(data.get("error_code") or "UNAVAILABLE"),
                   float(data.get("delay_ms") or 0), int(seed) if seed is not None else None)


def parse_instance_faults(error_rate: str | float | None = None, error_code: str | int | None = None,
                          delay_ms: str | float | None = None, seed: str | int | None = None,
                          *, flag_prefix: str = "--canary-") -> InstanceFaults:
    """Validated faults from option values (the server's own rules); InputError (exit 2) in one line naming the
    flag as the user typed it."""
    from splitproof.setup.boutique.recommendation import parse_faults  # grpc: only when faults are asked for

    try:
        parsed = parse_faults(error_rate, error_code, delay_ms, seed)
    except ValueError as exc:
        message = str(exc)
        for inner, outer in (("--error-rate", "error-rate"), ("--error-code", "error-code"),
                             ("--extra-latency-ms", "delay-ms"), ("--fault-seed", "fault-seed")):
            message = message.replace(inner, flag_prefix + outer)
        raise InputError(message) from None
    if error_code is not None and parsed.error_rate == 0:
        raise InputError(f"{flag_prefix}error-code needs {flag_prefix}error-rate PERCENT (> 0)")
    if seed is not None and parsed.error_rate == 0:
        raise InputError(f"{flag_prefix}fault-seed needs {flag_prefix}error-rate PERCENT (> 0)")
    return InstanceFaults(round(100 * parsed.error_rate, 9), parsed.error_code.name,
                          round(1000 * parsed.extra_latency_s, 6), parsed.seed)


def faults_to_json(faults: Mapping[str, InstanceFaults]) -> dict[str, dict[str, Any]]:
    return {version: f.to_json() for version, f in faults.items() if f.active}


def faults_from_json(data: Mapping[str, Any] | None) -> dict[str, InstanceFaults]:
    return {str(version): InstanceFaults.from_json(f) for version, f in (data or {}).items()}
