"""Attribution: the fast upstream-markup path of count_recommendations always agrees with the regex reference."""

from __future__ import annotations

import random

import pytest
from helpers import require_built

from splitproof.verifier.inputs import attribution
from splitproof.verifier.inputs.attribution import (
    Attribution,
    count_recommendations,
    count_recommendations_general,
    parse_class_overrides,
)

FRAGMENTS = (
    '<section class="recommendations">', '<SECTION class="recommendations">',
    '<section id="r" class="recommendations wide">', "<section class='recommendations'>", '<section class="ads">',
    "</section>", "</SECTION >", "</section\n>",
    '<div class="col-md-3">', '<div class="col-md-3 x">', "<DIV class='col-md-3'>", '<div class="col-md-30">',
    '<div id="a" class="col-md-3">', "col-md-3", '<div class="col-md-4">',
    '<a href="/product/OLJCESPC7Z">', "<h2>You May Also Like</h2>", "text ", "\n",
)
UNICODE_FRAGMENTS = (
    # non-ASCII letters that re.IGNORECASE matches to ASCII ones (long s, dotless i, dotted I, Kelvin sign)
    '<\u017fection class="recommendations">', "</\u017fection>", "</secti\u0131on>", "<d\u0130v class='col-md-3'>",
    '<section class="recommendations">\u212a', "caf\u00e9 ",
)


def test_fast_path_agrees_with_the_reference_on_random_markup() -> None:
    rng = random.Random(2026)
    fast_taken = 0
    for _ in range(20_000):
        parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 14))]
        if rng.random() < 0.3:
            parts.insert(rng.randint(0, len(parts)), rng.choice(UNICODE_FRAGMENTS))
        page = "".join(parts)
        want = count_recommendations_general(page)
        assert count_recommendations(page) == want, page
        if page.isascii():  # the Locust file passes an ASCII page's bytes undecoded
            assert count_recommendations(page.encode("ascii")) == want, page
        fast_taken += attribution._count_upstream_python(page) is not None
    assert fast_taken > 100  # the fast path really answered (seeded: 289 of 20,000), not only the reference


def test_the_c_page_counter_is_built() -> None:
    """Built at install wherever a compiler is (as the records scanner: tests/test_bulk_records.py)."""
    require_built("splitproof.verifier.inputs._markup", attribution._COUNT_C is not None,
                  "pages are counted in Python (the same answers, slower)")
    assert attribution._COUNT_C is not None and attribution._COUNT_C(upstream_page(4).encode()) == 4


@pytest.mark.parametrize("seed", range(4))
def test_the_c_page_counter_answers_what_the_python_one_answers(seed: int) -> None:
    """Byte for byte on random markup with every case variant of the markers, cut markers, non-ASCII bytes."""
    if attribution._COUNT_C is None:
        pytest.skip("the C page counter is not built")
    rng = random.Random(seed)
    pieces = [f.encode("utf-8") for f in FRAGMENTS + UNICODE_FRAGMENTS] + [
        b"<section", b"</section", b"col-md-", b"COL-MD-3", b"<div class=\"col-md-3\"", b"\x80", b"\xff", b"<", b"c"]
    agreed = 0
    for _ in range(20_000):
        def some(k: int) -> bytes:
            return b"".join(rng.choice(pieces) for _ in range(rng.randint(0, k)))

        if rng.random() < 0.5:
            page = some(16)
        else:  # around an upstream section, so the counting branch is compared too
            page = (some(2) + b'<section class="recommendations">' + some(6).replace(b"<section", b"<sectio")
                    + b'<div class="col-md-3">' * rng.randint(0, 5) + some(2) + b"</section>" + some(3))
        if rng.random() < 0.2 and page:
            i = rng.randrange(len(page))
            page = page[:i] + bytes([rng.randrange(256)]) + page[i + 1:]
        if rng.random() < 0.2:
            page = page[:rng.randint(0, len(page))]  # cut anywhere, inside a marker too
        want = attribution._count_upstream_python(page)
        assert attribution._COUNT_C(page) == want, page
        agreed += want is not None
    assert agreed > 100  # the counting branch was really compared, not only the early Nones


@pytest.mark.parametrize("marker", ["", "<SECTION", "</Section", "<sectio", "</sectio", "COL-md-3", "-m", "-M", "<",
                                    "<d", "</", "</S", "\x80"])
def test_the_c_page_counter_at_every_alignment(marker: str) -> None:
    """The C counter scans 16 bytes at a time: each marker, and a stray one, at every offset around a block edge."""
    if attribution._COUNT_C is None:
        pytest.skip("the C page counter is not built")
    base = upstream_page(4)
    at = base.index("<section")
    for shift in range(48):
        for page in (" " * shift + base, base[:at] + " " * shift + marker + base[at:],
                     base[:at + 40] + marker + " " * shift + base[at + 40:], base + " " * shift + marker,
                     (" " * shift + base)[:at + shift + 20]):
            data = page.encode("utf-8")
            assert attribution._COUNT_C(data) == attribution._count_upstream_python(data), (shift, marker, page)
    assert attribution._COUNT_C((" " * 17 + base).encode()) == 4


def test_the_plain_ascii_check_in_c_is_the_python_test_at_every_offset() -> None:
    """The C counter's plain-bytes check reads 64 bytes a turn, then words, then bytes: a NUL, an ESC or a top-bit
    byte (and their neighbours) at every offset of pages of every length around those edges, and clean pages,
    against ``isascii()`` with no NUL and no ESC."""
    count_c = attribution._COUNT_C
    if count_c is None:
        pytest.skip("the C page counter is not built")
    checked = 0
    for length in range(0, 200):
        clean = bytes(32 + (i * 7) % 95 for i in range(length))
        assert count_c(clean) != attribution.NOT_PLAIN and attribution._plain_python(clean)
        for at in range(length):
            for byte in (0, 0x80, 0xFF, 0x7F, 0x01, 0x1B, 0x1A, 0x1C):
                page = clean[:at] + bytes([byte]) + clean[at + 1:]
                assert (count_c(page) != attribution.NOT_PLAIN) == attribution._plain_python(page), (length, at, byte)
                checked += 1
    assert checked > 90_000
    assert count_c(bytearray(b"abc")) is None and count_c(memoryview(b"a\0c")) == attribution.NOT_PLAIN
    with pytest.raises(TypeError):
        count_c("text")


@pytest.mark.parametrize("page", ["caf\u00e9 " + "x" * 80, "x" * 80 + "\0", "\u00a0", "\0"])
def test_bytes_that_are_not_plain_ascii_ask_to_be_decoded_first(page: str) -> None:
    """Bytes with a non-ASCII, a NUL or an ESC byte (UTF-16 text holds NULs and ISO-2022 text ESCs, so an ASCII
    check alone could count them wrongly) are never counted undecoded, in C or in Python: the caller decodes them
    by their charset."""
    iso_2022 = (upstream_page(4) + "\u65e5\u672c").encode("iso2022_jp")  # 7-bit bytes, ESC-switched
    for data in (page.encode("utf-8"), upstream_page(4).encode("utf-16-le"), upstream_page(4).encode() + b"\0",
                 iso_2022):
        with pytest.raises(attribution.NotPlainText):
            count_recommendations(data)
        assert attribution._count_upstream_python(data) == attribution.NOT_PLAIN
    assert count_recommendations(upstream_page(4).encode("utf-16-le").decode("utf-16-le")) == 4


def test_a_non_ascii_letter_that_ignorecase_matches_never_fools_the_fast_path() -> None:
    earlier = '<\u017fection class="recommendations"><div class="col-md-3"></section>'  # the regex's first section
    page = earlier + upstream_page(4)
    assert count_recommendations(page) == count_recommendations_general(page) == 1
    assert count_recommendations(upstream_page(4).encode("ascii")) == 4


def upstream_page(n_items: int, with_ad: bool = True) -> str:
    items = "".join(f'<div class="col-md-3"><div><a href="/product/P{i}"><img alt="" src="/x.jpg"></a>'
                    f"<div><h5>Item {i}</h5></div></div></div>" for i in range(n_items))
    ad = '<div class="ad"><a href="/product/OLJCESPC7Z">Ad</a></div>' if with_ad else ""
    section = ('<section class="recommendations"><div class="container"><div class="row"><div class="col-xl-10">'
               f'<h2>You May Also Like</h2><div class="row">{items}</div></div></div></div></section>')
    return f"<html><body><main>product</main>{section}{ad}</body></html>"


@pytest.mark.parametrize("n", [0, 2, 4])
def test_counts_only_inside_the_section(n: int) -> None:
    assert count_recommendations(upstream_page(n)) == n
    assert attribution._count_upstream_python(upstream_page(n)) == n  # upstream markup takes the fast path


def test_missing_section_is_none_not_zero() -> None:
    assert count_recommendations("<html><body>no recs</body></html>") is None


def test_attribution_maps_counts_and_headers() -> None:
    attr = Attribution()
    assert attr.attribute("grpc", 5) == "production" and attr.attribute("grpc", 2) == "canary"
    assert attr.attribute("http", 4) == "production" and attr.attribute("http", 5) is None
    assert attr.attribute("grpc", None) is None
    by_header = Attribution.with_overrides(header="X-Version")
    assert by_header.attribute("grpc", 5, {"x-version": "canary"}) == "canary"
    assert by_header.attribute("grpc", 5, {}) is None
    with pytest.raises(ValueError, match="NAME=COUNT"):
        parse_class_overrides(["canary"])
    with pytest.raises(ValueError, match="both"):
        parse_class_overrides(["a=2", "b=2"])
