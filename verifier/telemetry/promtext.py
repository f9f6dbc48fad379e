"""A reader for the Prometheus text exposition format, version 0.0.4
(https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format) -- what Envoy's admin
``/stats/prometheus`` writes. Only the samples: ``name{label="value",...} value [timestamp]``; comments (``# HELP``,
``# TYPE``) and blank lines are skipped. Label values unescape ``\\\\``, ``\\"`` and ``\\n``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,)?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class ExpositionError(ValueError):
    """A line that is not a sample of the text format."""


def _unescape(text: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], text)


def parse_line(line: str) -> Sample | None:
    """One sample, or None for a comment/blank line. Raises ExpositionError."""
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    m = _NAME.match(s)
    if not m:
        raise ExpositionError(f"no metric name in {s[:80]!r}")
    name, pos, labels = m.group(0), m.end(), {}
    if pos < len(s) and s[pos] == "{":
        pos += 1
        while True:
            if s.startswith("}", pos):
                pos += 1
                break
            lm = _LABEL.match(s, pos)
            if not lm:
                raise ExpositionError(f"bad labels in {s[:80]!r}")
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
            if not lm.group(3):
                if not s.startswith("}", pos):
                    raise ExpositionError(f"bad labels in {s[:80]!r}")
                pos += 1
                break
    parts = s[pos:].split()
    if not parts or len(parts) > 2:
        raise ExpositionError(f"no value in {s[:80]!r}")
    try:
        value = float(parts[0])  # accepts NaN, +Inf, -Inf as the format does
    except ValueError:
        raise ExpositionError(f"bad value {parts[0]!r} in {s[:80]!r}") from None
    return Sample(name, labels, value)


def parse(lines: Iterable[str]) -> Iterator[Sample]:
    for line in lines:
        sample = parse_line(line)
        if sample is not None and not math.isnan(sample.value):
            yield sample
