/* The common case of verifier/inputs/records.py Record.to_line, in C: one record's line as the bytes the writer
 * appends (the Locust file writes one line per response, and formatting it was the largest share of recording).
 *
 * line_of(record, cache[, parts]) -> bytes | None
 *
 *   b'{"v":1,"t":' + T + middle + L + tail, with middle and tail the record's parts (from recordline's cache) and
 *   T and L its t and latency_ms written as recordline.decimal writes them in its fast range (6 and 3 decimals: the
 *   fixed-point text without its trailing zeros, "x.0" for a whole number) -- the same text as
 *   repr(round(x, places)), which json.dumps would write;
 *   None when either number is outside that range here (below 1e-4, not below the bound, negative, NaN): the
 *   caller then takes the Python path, which handles every float.
 *
 * The digits are the correctly rounded fixed-point text (ties to even), as f"{x:.6f}" writes it in Python: computed
 * exactly from the double's significand and exponent in 128-bit integer arithmetic (a float-to-string call cost
 * twice the rest of the line), or by PyOS_double_to_string -- Python's own conversion -- where the compiler has no
 * 128-bit integers. tests/test_records.py compares the bytes with Python's on seeded random floats of every
 * magnitude and at rounding ties.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const char HEAD[] = "{\"v\":1,\"t\":";
#define T_BELOW 8589934592.0            /* 2**33: recordline.T_BELOW */
#define LATENCY_BELOW 8796093022208.0   /* 2**43: recordline.LATENCY_BELOW */
#define NUMBER_MAX 64                   /* below 2**43 with 6 decimals: at most 21 characters */

#if defined(__SIZEOF_INT128__)
static const uint64_t POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};

/* x * 10**places rounded to the nearest integer, ties to even -- exactly, as the correctly rounded conversion
 * rounds: x = m * 2**-s (m the 53-bit significand) is an exact binary fraction, so the product m * 10**places
 * (below 2**73) shifted right by s, with the bits shifted out compared to one half, is the rounding of the exact
 * value. For x in [1e-4, 2**43): a normal double with 10 <= s <= 66, and the result is below 2**63. */
static uint64_t scaled(double x, int places) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int s = 1075 - (int)((bits >> 52) & 0x7ff);
    uint64_t m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    unsigned __int128 p = (unsigned __int128)m * POW10[places];
    unsigned __int128 q = p >> s, rest = p - (q << s), half = (unsigned __int128)1 << (s - 1);
    if (rest > half || (rest == half && (q & 1))) q++;
    return (uint64_t)q;
}

/* the digits of x rounded to `places` decimals, written from integer arithmetic (no float-to-string call) */
static size_t fixed_text(double x, int places, char *out) {
    uint64_t q = scaled(x, places), whole = q / POW10[places], frac = q % POW10[places];
    char digits[24];
    size_t n = 0, k = 0;
    do {
        digits[k++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    while (k) out[n++] = digits[--k];
    out[n++] = '.';
    for (int d = places - 1; d >= 0; d--) {
        out[n + (size_t)d] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return n + (size_t)places;
}
#else
/* no 128-bit integers: Python's own conversion (the one f"{x:.6f}" makes) */
static size_t fixed_text(double x, int places, char *out) {
    char *text = PyOS_double_to_string(x, 'f', places, 0, NULL);
    if (text == NULL) return 0;
    size_t n = strlen(text);
    if (n >= NUMBER_MAX) n = 0;  /* cannot happen below the bound: refuse, never overflow */
    memcpy(out, text, n);
    PyMem_Free(text);
    return n;
}
#endif

/* x with `places` decimals, trailing zeros dropped (one kept after the point); its length, or -1 when x is outside
 * [1e-4, below) (NaN too) or on a memory error (with the exception set). */
static Py_ssize_t fixed(double x, int places, double below, char *out) {
    if (!(x >= 1e-4 && x < below)) return -1;
    size_t n = fixed_text(x, places, out);
    if (n == 0) return -1;
    while (out[n - 1] == '0') n--;
    if (out[n - 1] == '.') out[n++] = '0';  /* the zero stripped right after the point */
    return (Py_ssize_t)n;
}

/* the line of t and latency around the (bytes) parts; None when a number is outside the fast range */
static PyObject *build(PyObject *t_obj, PyObject *latency_obj, PyObject *middle_obj, PyObject *tail_obj) {
    double t = PyFloat_AsDouble(t_obj), latency = PyFloat_AsDouble(latency_obj);
    if (PyErr_Occurred()) return NULL;
    char t_text[NUMBER_MAX], latency_text[NUMBER_MAX];
    Py_ssize_t t_len = fixed(t, 6, T_BELOW, t_text);
    Py_ssize_t latency_len = t_len < 0 ? -1 : fixed(latency, 3, LATENCY_BELOW, latency_text);
    if (latency_len < 0) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    Py_ssize_t head = (Py_ssize_t)strlen(HEAD);
    Py_ssize_t middle = PyBytes_GET_SIZE(middle_obj), tail = PyBytes_GET_SIZE(tail_obj);
    PyObject *line = PyBytes_FromStringAndSize(NULL, head + t_len + middle + latency_len + tail);
    if (line == NULL) return NULL;
    char *p = PyBytes_AS_STRING(line);
    memcpy(p, HEAD, (size_t)head);
    p += head;
    memcpy(p, t_text, (size_t)t_len);
    p += t_len;
    memcpy(p, PyBytes_AS_STRING(middle_obj), (size_t)middle);
    p += middle;
    memcpy(p, latency_text, (size_t)latency_len);
    p += latency_len;
    memcpy(p, PyBytes_AS_STRING(tail_obj), (size_t)tail);
    return line;
}

/* line_of(record, cache[, parts]): the record (a tuple: t, channel, items, version, status, latency_ms, source, by)
 * with the parts recordline.parts keeps in `cache` under (channel, items, version, status, source, by), or with
 * `parts` when given -- None when they are not in the cache or a number is outside the fast range (the caller then
 * makes the parts and passes them, or takes the Python path). One call from Record.to_line where there were three:
 * the key, the lookup and the line. */
static PyObject *line_of(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || nargs > 3 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 8 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "line_of(record: Record, cache: dict, parts: Parts = None)");
        return NULL;
    }
    PyObject *r = args[0], *parts = nargs == 3 ? args[2] : NULL;
    if (parts == NULL) {
        PyObject *key = PyTuple_Pack(6, PyTuple_GET_ITEM(r, 1), PyTuple_GET_ITEM(r, 2), PyTuple_GET_ITEM(r, 3),
                                     PyTuple_GET_ITEM(r, 4), PyTuple_GET_ITEM(r, 6), PyTuple_GET_ITEM(r, 7));
        if (key == NULL) return NULL;
        parts = PyDict_GetItemWithError(args[1], key);  /* borrowed */
        Py_DECREF(key);
        if (parts == NULL) {
            if (PyErr_Occurred()) return NULL;  /* an unhashable field */
            Py_RETURN_NONE;
        }
    }
    if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != 4 || !PyBytes_Check(PyTuple_GET_ITEM(parts, 2))
        || !PyBytes_Check(PyTuple_GET_ITEM(parts, 3))) {
        PyErr_SetString(PyExc_TypeError, "line_of: parts must be a recordline.Parts");
        return NULL;
    }
    Py_INCREF(parts);  /* the cache could change under a number's __float__ */
    PyObject *line = build(PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 5), PyTuple_GET_ITEM(parts, 2),
                           PyTuple_GET_ITEM(parts, 3));
    Py_DECREF(parts);
    return line;
}

static PyMethodDef methods[] = {
    {"line_of", (PyCFunction)(void (*)(void))line_of, METH_FASTCALL,
     "line_of(record, cache, parts=None) -> bytes | None: the record's line (see recordline.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_line", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__line(void) { return PyModule_Create(&module); }
