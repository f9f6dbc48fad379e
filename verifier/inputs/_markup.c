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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

/* first i in [from, end - n] where s[i:i+n] equals the lowered needle ignoring case; -1 if none. The needle starts
 * with '<' and then a letter: a plain loop on that pair beats restarting memchr at every tag of a page. */
static Py_ssize_t ci_find(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, const char *needle) {
    Py_ssize_t n = (Py_ssize_t)strlen(needle);
    unsigned char second = (unsigned char)needle[1];
    for (Py_ssize_t i = from; i + n <= end; i++) {
        if (s[i] == '<' && lower(s[i + 1]) == second && ci_equal(s + i, needle, n)) return i;
    }
    return -1;
}

/* "col-md-3" in any case, found by its first '-' (much rarer in HTML than its 'c'). */
static Py_ssize_t ci_count_marker(const unsigned char *s, Py_ssize_t from, Py_ssize_t end) {
    Py_ssize_t n = (Py_ssize_t)strlen(MARKER), count = 0;
    for (Py_ssize_t i = from + 3; i + n - 3 <= end; i++) {
        const unsigned char *hit = memchr(s + i, '-', (size_t)(end - (n - 3) + 1 - i));
        if (hit == NULL) break;
        i = hit - s;
        if (ci_equal(hit - 3, MARKER, n)) {
            count++;
            i += n - 4;
        }
    }
    return count;
}

static int is_ascii(const unsigned char *s, Py_ssize_t len) {
    Py_ssize_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t word;
        memcpy(&word, s + k, 8);
        if (word & 0x8080808080808080ULL) return 0;
    }
    for (; k < len; k++)
        if (s[k] & 0x80) return 0;
    return 1;
}

static Py_ssize_t count_exact(const unsigned char *s, Py_ssize_t from, Py_ssize_t end, const char *needle) {
    Py_ssize_t n = (Py_ssize_t)strlen(needle), count = 0;
    for (Py_ssize_t i = from; i + n <= end; i++) {
        const unsigned char *hit = memchr(s + i, needle[0], (size_t)(end - n + 1 - i));
        if (hit == NULL) break;
        i = hit - s;
        if (memcmp(hit, needle, (size_t)n) == 0) {
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
    if (!is_ascii(s, len)) goto done;
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

static PyMethodDef methods[] = {
    {"count_upstream", count_upstream, METH_O,
     "count_upstream(page: bytes) -> int | None: the upstream-markup fast path (see attribution.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_markup", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__markup(void) { return PyModule_Create(&module); }
