/* The upstream-markup fast path of verifier/inputs/attribution.py, in C: count the recommendation items of a
 * product page's bytes without lowering a copy (the Locust file counts every product page it fetches): one pass to
 * the section, one through it.
 *
 * count_upstream(page) answers exactly what attribution._count_upstream_python answers for the same bytes --
 * tests/test_attribution.py runs both on seeded random markup -- so the regex reference is still the judge:
 *
 *   -1    (attribution.NOT_PLAIN) unless the page is plain: every byte ASCII, none NUL or ESC;
 *   None  unless the first "<section", in any case, is exactly '<section class="recommendations">';
 *   None  unless the first "</section" after it, in any case, is exactly "</section>";
 *   n     = the exact '<div class="col-md-3">' between them, if every "col-md-3" there (any case) is one of them;
 *   None  otherwise.
 *
 * Python's lower() of an ASCII string is the C locale's ASCII lowering; counts are of non-overlapping matches,
 * and neither counted marker can overlap itself, so counting every match is the same.
 *
 * The plain-ASCII check comes first (the Locust file passes every product page's bytes undecoded: a page that is
 * not plain is decoded by its charset and counted as text instead).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static const char OPEN[] = "<section class=\"recommendations\">";
static const char CLOSE[] = "</section>";
static const char ITEM[] = "<div class=\"col-md-3\">";
static const char SECTION[] = "<section";   /* lowered spellings */
static const char END_TAG[] = "</section";
static const char MARKER[] = "col-md-3";
#define END_LEN ((Py_ssize_t)sizeof END_TAG - 1)
#define ITEM_LEN ((Py_ssize_t)sizeof ITEM - 1)
#define MARKER_LEN ((Py_ssize_t)sizeof MARKER - 1)

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* does s[0:n] equal the lowered needle, ignoring ASCII case? */
static int ci_equal(const unsigned char *s, const char *needle, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++)
        if (lower(s[k]) != (unsigned char)needle[k]) return 0;
    return 1;
}

/* The first j in [from, end - 1) where s[j] == a and (s[j + 1] | 0x20) == b; -1 if none. The search for the section
 * looks for its tag by such a pair of bytes (rare in a page: '<' then 's') and compares the tag in full at each hit:
 * 16 bytes at a time where SSE2 is (every x86-64), byte by byte otherwise. With b = (letter | 0x20), both cases of
 * the letter are hits (and a few non-letters: the full compare rejects them), so the hits are a superset of the
 * tag's positions and every answer is the plain loop's. */
static Py_ssize_t next_pair(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, unsigned char a,
                            unsigned char b) {
    Py_ssize_t j = from;
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b), fold = _mm_set1_epi8(0x20);
    for (; j + 17 <= end; j += 16) {  /* reads s[j .. j + 16]: each byte and the one after it */
        __m128i here = _mm_loadu_si128((const __m128i *)(s + j));
        __m128i next = _mm_loadu_si128((const __m128i *)(s + j + 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(here, va), _mm_cmpeq_epi8(_mm_or_si128(next, fold), vb)));
        if (mask) return j + __builtin_ctz(mask);
    }
#endif
    for (; j + 1 < end; j++)
        if (s[j] == a && (s[j + 1] | 0x20) == b) return j;
    return -1;
}

/* first i in [from, end - n] where s[i:i+n] equals the lowered needle ignoring case; -1 if none (the needle starts
 * with '<' and then a character that | 0x20 leaves as it is: a lowercase letter or '/'). */
static Py_ssize_t ci_find(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, const char *needle) {
    Py_ssize_t n = (Py_ssize_t)strlen(needle);
    for (Py_ssize_t i = from; (i = next_pair(s, i, end, '<', (unsigned char)needle[1])) >= 0; i++)
        if (i + n <= end && ci_equal(s + i, needle, n)) return i;
    return -1;
}

/* attribution's "plain" bytes: every byte ASCII (no top bit), none NUL (UTF-16 and UTF-32 text holds NULs) and none
 * ESC (ISO-2022 text switches to its double-byte sets with it: 7-bit bytes that decode to other text) -- 64 bytes a
 * turn where SSE2 is (the top bits ORed together, NUL and ESC found by comparison), a word at a time otherwise. */
static int plain_bytes(const unsigned char *s, Py_ssize_t len) {
    Py_ssize_t k = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128(), esc = _mm_set1_epi8(0x1B);
    for (; k + 64 <= len; k += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + k)), b = _mm_loadu_si128((const __m128i *)(s + k + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + k + 32)), d = _mm_loadu_si128((const __m128i *)(s + k + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) return 0;
        __m128i nul = _mm_cmpeq_epi8(_mm_min_epu8(_mm_min_epu8(a, b), _mm_min_epu8(c, d)), zero);
        __m128i escs = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, esc), _mm_cmpeq_epi8(b, esc)),
                                    _mm_or_si128(_mm_cmpeq_epi8(c, esc), _mm_cmpeq_epi8(d, esc)));
        if (_mm_movemask_epi8(_mm_or_si128(nul, escs))) return 0;
    }
#endif
    for (; k + 8 <= len; k += 8) {
        uint64_t word;
        memcpy(&word, s + k, 8);
        if (word & 0x8080808080808080ULL) return 0;
        /* a zero byte: the classic (w - 0x01..) & ~w & 0x80.. test (exact once no byte has its top bit); an ESC is a
         * zero byte of w ^ 0x1B1B.. */
        uint64_t x = word ^ 0x1B1B1B1B1B1B1B1BULL;
        if (((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL)
            || ((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL)) return 0;
    }
    for (; k < len; k++)
        if ((s[k] & 0x80) || s[k] == 0 || s[k] == 0x1B) return 0;
    return 1;
}

/* One '<' or '-' of the section at s[q] (q >= start): the end tag (1), or an exact item or a "col-md-3" marker (any
 * case, the '-' is its fourth byte) to count (0). Neither counted marker holds a '<' past its first byte, so one
 * that starts before the end tag also ends before it, as the Python version's slice [start:end] requires. */
static inline int section_byte(const unsigned char *s, Py_ssize_t q, Py_ssize_t start, Py_ssize_t len,
                               Py_ssize_t *items, Py_ssize_t *markers) {
    if (q + 1 >= len) return 0;  /* every marker is longer than the one byte left */
    unsigned char next = s[q + 1];
    if (s[q] == '<') {  /* the byte after it rules out all but one marker: no compare for most tags */
        if (next == '/') return q + END_LEN <= len && ci_equal(s + q + 2, END_TAG + 2, END_LEN - 2);
        if (next == 'd' && q + ITEM_LEN <= len && memcmp(s + q, ITEM, (size_t)ITEM_LEN) == 0) (*items)++;
    } else if ((next | 0x20) == 'm' && q - 3 >= start && q - 3 + MARKER_LEN <= len
               && ci_equal(s + q - 3, MARKER, MARKER_LEN)) {
        (*markers)++;
    }
    return 0;
}

/* The first "</section" (any case) at or after start -- -1 if none -- with the exact items and the "col-md-3"
 * markers before it counted on the way: one pass, where three searches each read the section again. It stops only
 * where section_byte can act: a '<' before 'd' (an item) or before '/' and 's' or 'S' (the end tag), a '-' before
 * 'm' or 'M' (a marker) -- 16 bytes at a time where SSE2 is, from the bytes and the two after each, every hit of a
 * block taken from its mask: a superset of the positions where section_byte counts or stops, so the answer is the
 * byte loop's, with a third of its stops on a product page (most tags are neither). No marker can overlap itself,
 * so counting every match is counting the non-overlapping ones. */
static Py_ssize_t scan_section(const unsigned char *s, Py_ssize_t start, Py_ssize_t len, Py_ssize_t *items,
                               Py_ssize_t *markers) {
    Py_ssize_t p = start;
#if defined(__SSE2__)
    const __m128i lt = _mm_set1_epi8('<'), dash = _mm_set1_epi8('-'), fold = _mm_set1_epi8(0x20);
    const __m128i d = _mm_set1_epi8('d'), slash = _mm_set1_epi8('/'), s_ = _mm_set1_epi8('s'), m = _mm_set1_epi8('m');
    for (; p + 18 <= len; p += 16) {  /* reads s[p .. p + 17]: each byte and the two after it */
        __m128i v = _mm_loadu_si128((const __m128i *)(s + p));
        __m128i v1 = _mm_loadu_si128((const __m128i *)(s + p + 1));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(s + p + 2));
        __m128i tag = _mm_or_si128(_mm_cmpeq_epi8(v1, d),
                                   _mm_and_si128(_mm_cmpeq_epi8(v1, slash),
                                                 _mm_cmpeq_epi8(_mm_or_si128(v2, fold), s_)));
        __m128i hit = _mm_or_si128(_mm_and_si128(_mm_cmpeq_epi8(v, lt), tag),
                                   _mm_and_si128(_mm_cmpeq_epi8(v, dash), _mm_cmpeq_epi8(_mm_or_si128(v1, fold), m)));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        for (; mask; mask &= mask - 1) {
            Py_ssize_t q = p + __builtin_ctz(mask);
            if (section_byte(s, q, start, len, items, markers)) return q;
        }
    }
#endif
    for (; p < len; p++)
        if ((s[p] == '<' || s[p] == '-') && section_byte(s, p, start, len, items, markers)) return p;
    return -1;
}

static PyObject *count_upstream(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *s = view.buf;
    Py_ssize_t len = view.len, result = -1;
    if (!plain_bytes(s, len)) {
        PyBuffer_Release(&view);
        return PyLong_FromLong(-1);
    }
    Py_ssize_t open_len = (Py_ssize_t)strlen(OPEN), close_len = (Py_ssize_t)strlen(CLOSE);
    Py_ssize_t i = ci_find(s, 0, len, SECTION);
    if (i < 0 || len - i < open_len || memcmp(s + i, OPEN, (size_t)open_len) != 0) goto done;
    Py_ssize_t start = i + open_len;
    Py_ssize_t n = 0, markers = 0, j = scan_section(s, start, len, &n, &markers);
    if (j < 0 || len - j < close_len || memcmp(s + j, CLOSE, (size_t)close_len) != 0) goto done;
    if (markers == n) result = n;
done:
    PyBuffer_Release(&view);
    if (result < 0) Py_RETURN_NONE;
    return PyLong_FromSsize_t(result);
}

static PyMethodDef methods[] = {
    {"count_upstream", count_upstream, METH_O,
     "count_upstream(page: bytes) -> int | None: the upstream-markup fast path, -1 for bytes that are not "
     "plain: ASCII without NUL or ESC (see attribution.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_markup", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__markup(void) { return PyModule_Create(&module); }
