/* The common case of verifier/inputs/records.py Record.to_line, in C: one record's line as the bytes the writer
 * appends (the Locust file writes one line per response, and formatting it was the largest share of recording).
 *
 * record_line(t, latency_ms, middle, tail) -> bytes | None
 *
 *   b'{"v":1,"t":' + T + middle + L + tail, where T and L are t and latency_ms written as recordline.decimal writes
 *   them in its fast range (6 and 3 decimals: the fixed-point text without its trailing zeros, "x.0" for a whole
 *   number) -- the same text as repr(round(x, places)), which json.dumps would write;
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

static PyObject *record_line(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[2]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "record_line(t: float, latency_ms: float, middle: bytes, tail: bytes)");
        return NULL;
    }
    double t = PyFloat_AsDouble(args[0]), latency = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred()) return NULL;
    char t_text[NUMBER_MAX], latency_text[NUMBER_MAX];
    Py_ssize_t t_len = fixed(t, 6, T_BELOW, t_text);
    Py_ssize_t latency_len = t_len < 0 ? -1 : fixed(latency, 3, LATENCY_BELOW, latency_text);
    if (latency_len < 0) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    Py_ssize_t head = (Py_ssize_t)strlen(HEAD), middle = PyBytes_GET_SIZE(args[2]), tail = PyBytes_GET_SIZE(args[3]);
    PyObject *line = PyBytes_FromStringAndSize(NULL, head + t_len + middle + latency_len + tail);
    if (line == NULL) return NULL;
    char *p = PyBytes_AS_STRING(line);
    memcpy(p, HEAD, (size_t)head);
    p += head;
    memcpy(p, t_text, (size_t)t_len);
    p += t_len;
    memcpy(p, PyBytes_AS_STRING(args[2]), (size_t)middle);
    p += middle;
    memcpy(p, latency_text, (size_t)latency_len);
    p += latency_len;
    memcpy(p, PyBytes_AS_STRING(args[3]), (size_t)tail);
    return line;
}

static PyMethodDef methods[] = {
    {"record_line", (PyCFunction)(void (*)(void))record_line, METH_FASTCALL,
     "record_line(t, latency_ms, middle, tail) -> bytes | None: a record's line (see records.py Record.to_line)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_line", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__line(void) { return PyModule_Create(&module); }
