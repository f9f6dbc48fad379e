/* The upstream-markup fast path of verifier/inputs/attribution.py, in C: count the recommendation items of a
 * product page's bytes in one lowering-free pass (the Locust file counts every product page it fetches).
 *
 * count_upstream(page) answers exactly what attribution._count_upstream_python answers for the same bytes --
 * tests/test_attribution.py runs both on seeded random markup -- so the regex reference is still the judge:
 *
 *   None  unless the page is ASCII;
 *   None  unless the first "<section", in any case, is exactly '<section class="recommendations">';
 *   None  unless the first "</section" after it, in any case, is exactly "</section>";
 *   n     = the exact '<div class="col-md-3">' between them, if every "col-md-3" there (any case) is one of them;
 *   None  otherwise.
 *
 * Python's lower() of an ASCII string is the C locale's ASCII lowering; counts are of non-overlapping matches,
 * and neither counted marker can overlap itself, so counting every match is the same.
 *
 * plain(page) is attribution.plain_ascii's test -- every byte ASCII and none NUL -- in the same kind of pass.
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

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* does s[0:n] equal the lowered needle, ignoring ASCII case? */
static int ci_equal(const unsigned char *s, const char *needle, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++)
        if (lower(s[k]) != (unsigned char)needle[k]) return 0;
    return 1;
}

/* The first j in [from, end - 1) where s[j] == a and (s[j + 1] | fold) == b; -1 if none. Every search below looks
 * for its marker by such a pair of bytes (rare in a page: '<' then a given letter, '-' then 'm') and compares the
 * marker in full at each hit: 16 bytes at a time where SSE2 is (every x86-64), byte by byte otherwise. With fold =
 * 0x20 and b = (letter | 0x20), both cases of the letter are hits (and a few non-letters: the full compare rejects
 * them), so the hits are a superset of the markers' positions and every answer is the plain loop's. */
static Py_ssize_t next_pair(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, unsigned char a, unsigned char b,
                            unsigned char fold) {
    Py_ssize_t j = from;
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b), vf = _mm_set1_epi8((char)fold);
    for (; j + 17 <= end; j += 16) {  /* reads s[j .. j + 16]: each byte and the one after it */
        __m128i here = _mm_loadu_si128((const __m128i *)(s + j));
        __m128i next = _mm_loadu_si128((const __m128i *)(s + j + 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(here, va), _mm_cmpeq_epi8(_mm_or_si128(next, vf), vb)));
        if (mask) return j + __builtin_ctz(mask);
    }
#endif
    for (; j + 1 < end; j++)
        if (s[j] == a && (s[j + 1] | fold) == b) return j;
    return -1;
}

/* first i in [from, end - n] where s[i:i+n] equals the lowered needle ignoring case; -1 if none (the needle starts
 * with '<' and then a character that | 0x20 leaves as it is: a lowercase letter or '/'). */
static Py_ssize_t ci_find(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, const char *needle) {
    Py_ssize_t n = (Py_ssize_t)strlen(needle);
    for (Py_ssize_t i = from; (i = next_pair(s, i, end, '<', (unsigned char)needle[1], 0x20)) >= 0; i++)
        if (i + n <= end && ci_equal(s + i, needle, n)) return i;
    return -1;
}

/* "col-md-3" in any case, found by its first "-m" (much rarer in HTML than its 'c'). It cannot overlap itself. */
static Py_ssize_t ci_count_marker(const unsigned char *s, Py_ssize_t from, Py_ssize_t end) {
    Py_ssize_t n = (Py_ssize_t)strlen(MARKER), count = 0;
    for (Py_ssize_t i = from + 3; (i = next_pair(s, i, end, '-', 'm', 0x20)) >= 0; i++) {
        if (i - 3 + n <= end && ci_equal(s + i - 3, MARKER, n)) {
            count++;
            i += n - 4;  /* past the match (the loop adds the last 1) */
        }
    }
    return count;
}

/* no byte of s[0:len] has its top bit set (ASCII) -- and, with nul_too, none is NUL either: 64 bytes a turn where
 * SSE2 is (the top bits ORed together, the NULs found as a zero minimum), a word at a time otherwise. */
static int ascii_only(const unsigned char *s, Py_ssize_t len, int nul_too) {
    Py_ssize_t k = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; k + 64 <= len; k += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + k)), b = _mm_loadu_si128((const __m128i *)(s + k + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + k + 32)), d = _mm_loadu_si128((const __m128i *)(s + k + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) return 0;
        if (nul_too && _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(_mm_min_epu8(a, b), _mm_min_epu8(c, d)), zero)))
            return 0;
    }
#endif
    for (; k + 8 <= len; k += 8) {
        uint64_t word;
        memcpy(&word, s + k, 8);
        if (word & 0x8080808080808080ULL) return 0;
        /* a zero byte: the classic (w - 0x01..) & ~w & 0x80.. test (exact once no byte has its top bit) */
        if (nul_too && ((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL)) return 0;
    }
    for (; k < len; k++)
        if ((s[k] & 0x80) || (nul_too && s[k] == 0)) return 0;
    return 1;
}

/* non-overlapping exact matches of needle (two bytes or more) in s[from:end] */
static Py_ssize_t count_exact(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, const char *needle) {
    Py_ssize_t n = (Py_ssize_t)strlen(needle), count = 0;
    const unsigned char a = (unsigned char)needle[0], b = (unsigned char)needle[1];
    for (Py_ssize_t i = from; (i = next_pair(s, i, end, a, b, 0)) >= 0; i++) {
        if (i + n <= end && memcmp(s + i, needle, (size_t)n) == 0) {
            count++;
            i += n - 1;
        }
    }
    return count;
}

static PyObject *count_upstream(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *s = view.buf;
    Py_ssize_t len = view.len, result = -1;
    if (!ascii_only(s, len, 0)) goto done;
    Py_ssize_t open_len = (Py_ssize_t)strlen(OPEN), close_len = (Py_ssize_t)strlen(CLOSE);
    Py_ssize_t i = ci_find(s, 0, len, SECTION);
    if (i < 0 || len - i < open_len || memcmp(s + i, OPEN, (size_t)open_len) != 0) goto done;
    Py_ssize_t start = i + open_len;
    Py_ssize_t j = ci_find(s, start, len, END_TAG);
    if (j < 0 || len - j < close_len || memcmp(s + j, CLOSE, (size_t)close_len) != 0) goto done;
    Py_ssize_t n = count_exact(s, start, j, ITEM);
    if (ci_count_marker(s, start, j) == n) result = n;
done:
    PyBuffer_Release(&view);
    if (result < 0) Py_RETURN_NONE;
    return PyLong_FromSsize_t(result);
}

static PyObject *plain(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int answer = ascii_only(view.buf, view.len, 1);
    PyBuffer_Release(&view);
    return PyBool_FromLong(answer);
}

static PyMethodDef methods[] = {
    {"plain", plain, METH_O,
     "plain(page: bytes) -> bool: every byte ASCII and none NUL (see attribution.plain_ascii)"},
    {"count_upstream", count_upstream, METH_O,
     "count_upstream(page: bytes) -> int | None: the upstream-markup fast path (see attribution.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_markup", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__markup(void) { return PyModule_Create(&module); }
