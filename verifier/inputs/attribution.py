"""Attribute one response to a version: the single implementation shared by verify-split and the Locust file.

Production returns 5 recommendations over gRPC and the canary 2; the frontend keeps only the first 4, so a
product page shows 4 (production) or 2 (canary). Anything else -- an error, a page without the
recommendations section, an unexpected count -- is *unattributed* and never folded into a version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from splitproof.verifier.boutique import GRPC_ITEMS, ITEM_OPEN, PAGE_ITEMS, SECTION_CLOSE, SECTION_OPEN
from splitproof.verifier.inputs import extensions

DEFAULT_GRPC_CLASSES: dict[int, str] = dict(GRPC_ITEMS)
DEFAULT_HTML_CLASSES: dict[int, str] = dict(PAGE_ITEMS)

# <section class="recommendations"> ... </section>; items are <div class="col-md-3"> inside it.
_SECTION_OPEN = re.compile(r"<section\b[^>]*\bclass\s*=\s*[\"'][^\"']*\brecommendations\b[^\"']*[\"'][^>]*>", re.I)
_SECTION_CLOSE = re.compile(r"</section\s*>", re.I)
_ITEM = re.compile(r"<div\b[^>]*\bclass\s*=\s*[\"'][^\"']*\bcol-md-3\b[^\"']*[\"']", re.I)


# The exact upstream markers, and what any other spelling of them contains (lowered), as str and as bytes.
_MARKERS = (SECTION_OPEN, SECTION_CLOSE, ITEM_OPEN, "<section", "</section", "col-md-3")
_MARKERS_BYTES = tuple(m.encode("ascii") for m in _MARKERS)


NOT_PLAIN = -1  # what the fast path answers for bytes that are not plain (see count_recommendations)


class NotPlainText(ValueError):
    """Page bytes that are not plain (ASCII without NUL or ESC): decode them by the page's charset, count the text."""


def count_recommendations(html: str | bytes) -> int | None:
    """Items inside the page's recommendations section, or None when the section is missing.

    Counts only inside ``<section class="recommendations">`` -- the page also has an ad linking to a product.
    Pages in the upstream markup take a fast path of plain substring searches (the Locust file calls this for
    every product page); any variation -- other attribute order, case, class lists, any non-ASCII character --
    takes the general regex path. Both give the same answer: the fast path is used only when it provably matches
    what the regexes would find.

    ``html`` may be the page's bytes: they are counted undecoded when they are *plain* -- every byte ASCII, none NUL
    and none ESC, which every ASCII-compatible charset decodes to the same text (UTF-16 and UTF-32 text always holds
    NUL bytes; ISO-2022 text switches to its double-byte sets with ESC) -- in C where ``_markup`` is built, in the
    same pass that checks it. Other bytes raise :class:`NotPlainText`: the caller decodes them by the page's charset
    and counts the text. (UTF-7, whose 7-bit bytes decode to other text with neither, is forbidden in HTML.)
    """
    # (the fast path's two spellings, called here and not through a function: the Locust file counts every page)
    fast = _COUNT_C(html) if _COUNT_C is not None and isinstance(html, bytes) else _count_upstream_python(html)
    if fast is not None:
        if fast == NOT_PLAIN:
            raise NotPlainText("page bytes that are not plain ASCII text: decode them by their charset")
        return fast
    return count_recommendations_general(html.decode("ascii") if isinstance(html, bytes) else html)


_COUNT_C: Callable[[bytes], int | None] | None = extensions.optional("_markup", "count_upstream")


def _plain_python(data: bytes) -> bool:
    # (ints, not b"\0": a bytes operand costs a TypeError raised and cleared)
    return data.isascii() and 0 not in data and 0x1B not in data


def _count_upstream_python(html: str | bytes) -> int | None:
    """The fast path in Python (``_markup.count_upstream`` answers the same): NOT_PLAIN for bytes that are not plain,
    the count for upstream markup, else None (the regexes decide)."""
    if isinstance(html, bytes) and not _plain_python(html):
        return NOT_PLAIN
    # ASCII only (O(1) for a str): under re.IGNORECASE a few non-ASCII letters match ASCII ones ("\u017f" is "s",
    # "\u0131" is "i", the Kelvin sign is "k"), which lower() below would not see.
    if not html.isascii():
        return None
    opening, closing, item, section, end_tag, marker = _MARKERS_BYTES if isinstance(html, bytes) else _MARKERS
    low = html.lower()  # one lowered copy: every other spelling of a marker is found in it
    i = low.find(section)  # type: ignore[arg-type]
    if i < 0 or not html.startswith(opening, i):  # type: ignore[arg-type]
        return None  # no section, or the first one is written otherwise than upstream
    start = i + len(opening)
    j = low.find(end_tag, start)  # type: ignore[arg-type]
    if j < 0 or not html.startswith(closing, j):  # type: ignore[arg-type]
        return None  # unclosed, or its first closing tag is written otherwise
    n = html.count(item, start, j)  # type: ignore[arg-type]
    # every "col-md-3" inside is an exact item marker, so the item regex counts exactly these
    return n if low.count(marker, start, j) == n else None  # type: ignore[arg-type]


def count_recommendations_general(html: str) -> int | None:
    """The reference implementation (regexes): what count_recommendations must always agree with."""
    opening = _SECTION_OPEN.search(html)
    if opening is None:
        return None
    closing = _SECTION_CLOSE.search(html, opening.end())
    end = closing.start() if closing else len(html)
    return len(_ITEM.findall(html, opening.end(), end))


def parse_class_overrides(specs: list[str]) -> dict[int, str]:
    """Parse ``NAME=COUNT`` items (``--class canary=2``) into {count: name}. Raises ValueError on bad input."""
    out: dict[int, str] = {}
    for spec in specs:
        name, sep, count_text = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--class expects NAME=COUNT, got {spec!r}")
        try:
            count = int(count_text)
        except ValueError:
            raise ValueError(f"--class {spec!r}: COUNT must be an integer") from None
        if count < 0:
            raise ValueError(f"--class {spec!r}: COUNT must be >= 0")
        if count in out and out[count] != name:
            raise ValueError(f"--class: count {count} given to both {out[count]!r} and {name!r}")
        out[count] = name
    return out


@dataclass(frozen=True)
class Attribution:
    """How to map a response to a version: by item count per channel, or by a response header value."""

    grpc_classes: Mapping[int, str] = field(default_factory=lambda: dict(DEFAULT_GRPC_CLASSES))
    html_classes: Mapping[int, str] = field(default_factory=lambda: dict(DEFAULT_HTML_CLASSES))
    header: str | None = None  # e.g. "x-version" set by Istio headers.response.set on each destination

    # What callers derive from this attribution (verifier.inputs.classify keeps its outcome per count here): it is
    # frozen, so whatever is derived from it holds while it lives. No part of equality, hashing or repr.
    derived: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def with_overrides(cls, class_specs: list[str] | None = None, header: str | None = None,
                       channel: str | None = None) -> Attribution:
        """Build from CLI-style overrides. ``--class`` replaces the count map of ``channel`` (both if None)."""
        if not class_specs:
            return cls(header=header.lower() if header else None)
        classes = parse_class_overrides(class_specs)
        grpc = classes if channel in (None, "grpc") else dict(DEFAULT_GRPC_CLASSES)
        html = classes if channel in (None, "http") else dict(DEFAULT_HTML_CLASSES)
        return cls(grpc_classes=grpc, html_classes=html, header=header.lower() if header else None)

    def classes_for(self, channel: str) -> Mapping[int, str]:
        return self.grpc_classes if channel == "grpc" else self.html_classes

    def versions(self) -> list[str]:
        """Every version name this attribution can produce by count (header values are open-ended)."""
        names: list[str] = []
        for mapping in (self.grpc_classes, self.html_classes):
            for name in mapping.values():
                if name not in names:
                    names.append(name)
        return names

    def by_count(self, channel: str, items: int | None) -> str | None:
        if items is None:
            return None
        return self.classes_for(channel).get(items)

    def by_header(self, headers: Mapping[str, str] | None) -> str | None:
        if self.header is None or not headers:
            return None
        for key, value in headers.items():
            if key.lower() == self.header:
                value = value.strip()
                return value or None
        return None

    def attribute(self, channel: str, items: int | None, headers: Mapping[str, str] | None = None) -> str | None:
        """The version of one successful response, or None (unattributed)."""
        if self.header is not None:
            return self.by_header(headers)
        return self.by_count(channel, items)
