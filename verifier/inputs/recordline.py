"""How a record's line is written: the text of its numbers and of its other fields, cached per run.

verifier.inputs.records defines the format and Record.to_json / Record.to_line the line; this module is how they
make it fast, because the Locust file writes one line per response. Every shortcut here gives the bytes of the
json.dumps reference (Record.to_json_reference) -- tests/test_records.py checks each against it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from splitproof.verifier.inputs import extensions

# Below these magnitudes a double's spacing is under 10**-places, so at most one number with that many decimals
# rounds to it: the shortest repr of round(x, places) is then the correctly rounded fixed-point string of x
# without its trailing zeros (2**33 s is the year 2242; 2**43 ms is 278 years).
T_BELOW = float(2 ** 33)
LATENCY_BELOW = float(2 ** 43)


def decimal(x: float, places: int, below: float) -> str | None:
    """``repr(round(x, places))`` -- json.dumps's text for it -- with one float-to-decimal conversion instead of
    two (the Locust file formats two numbers per response); None when ``x`` is not finite."""
    if 1e-4 <= abs(x) < below:  # repr writes 1e-05 and 1e+16 with an exponent: those take the reference
        text = f"{x:.{places}f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    y = round(x, places)
    return repr(y) if math.isfinite(y) else None


# A canonical line's text between ``t`` and ``latency_ms`` and after ``latency_ms``; then the same as the bytes
# _line.line_of writes: from the comma after ``t`` to the ``latency_ms`` key, and from the number to the newline.
Parts = tuple[str, str, bytes, bytes]

# The parts of the lines of a run: a handful of distinct (channel, items, version, status, source, by) per run.
# LINE_C looks them up here itself.
PARTS: dict[tuple[str, int | None, str | None, str, str | None, str | None], Parts] = {}


def parts(channel: str, items: int | None, version: str | None, status: str, source: str | None,
          by: str | None) -> Parts:
    """The parts of the line of a record with these fields (kept: the Locust file writes one line per response)."""
    key = (channel, items, version, status, source, by)
    found = PARTS.get(key)
    if found is None:
        found = _parts(*key)
        if len(PARTS) < 1024:
            PARTS[key] = found
    return found


def _parts(channel: str, items: int | None, version: str | None, status: str, source: str | None,
           by: str | None) -> Parts:
    count = "null" if items is None else str(int(items))
    middle = (f'"channel":{_js(channel)},"items":{count},"version":{"null" if version is None else _js(version)},'
              f'"status":{_js(status)},')
    tail = ("" if source is None else f',"source":{_js(source)}') + ("}" if by is None else f',"by":{_js(by)}}}')
    return middle, tail, f',{middle}"latency_ms":'.encode(), f"{tail}\n".encode()


# the C writer (verifier/inputs/_line.c): LINE_C(record, PARTS[, parts]) is the record's line, or None when its parts
# are not in PARTS (and not given) or a number is outside the C range; None where it is not built: Record.to_line
# then formats in Python
LINE_C: Callable[..., bytes | None] | None = extensions.optional("_line", "line_of")


_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII except " and \ : JSON-encodes as itself


_JS: dict[str, str] = {}  # channel, version, status, source: a handful of distinct strings per run


def _js(text: str) -> str:
    out = _JS.get(text)
    if out is None:
        out = f'"{text}"' if _PLAIN.fullmatch(text) else json.dumps(text)
        if len(_JS) < 1024:
            _JS[text] = out
    return out
