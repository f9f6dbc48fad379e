/* The records scanner: splitproof.verifier.inputs._scan, the C backend of verifier/inputs/bulk.py.
 *
 * scan(buf, start, end, values, keys, sources) walks the complete lines buf[start:end] (the last byte is a newline)
 * and vouches for every line of RecordWriter's exact shape -- the same language as bulk.py's _LINE regex, checked
 * here by a hand-written matcher, one pass, no backtracking:
 *
 *   {"v":1,"t":N,KEY,"latency_ms":N[,"source":S]}\n
 *   KEY = "channel":"grpc|http","items":null|0|[1-9][0-9]{0,5},"version":null|S,"status":S
 *   N   = (0|[1-9][0-9]{0,15})\.[0-9]{1,300}      S = "[^"\\\x00-\x1f]{1,1000}"
 *
 * (the quantifiers are possessive in the regex: a longer run of digits or characters fails the line, as here).
 * Lines that do not match are not judged here: they come back as gaps, byte ranges the caller hands to the exact
 * parser, which counts and reports them. The result is a list of segments in file order:
 *
 *   (start, end)                     a gap: the lines buf[start:end] were not vouched for
 *   (n, order, counts)               values false: n vouched lines; order lists the key ids in the order of their
 *                                    first line in the segment, counts their numbers of lines
 *   (n, codes, ts, lats, srcs)       values true: per line, as native arrays in bytes objects: the key id (uint16),
 *                                    t and latency_ms (double, equal to Python's float() of the text: see to_double)
 *                                    the source id + 1 (uint16; 0: no source)
 *
 * keys and sources are the caller's tables (lists of bytes): a key is the span from "channel" to the closing quote
 * of the status, a source the text between its quotes. New ones are appended, up to MAX_TABLE each; a line whose key
 * or source would not fit is a gap (the exact parser reads it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define MAX_TABLE 4096
#define BUCKETS 1024

typedef struct {
    PyObject *list;               /* the caller's table: a list of bytes */
    Py_ssize_t n;
    int head[BUCKETS];            /* by length: the first id of that length bucket, -1 if none */
    int next[MAX_TABLE];
    const char *ptr[MAX_TABLE];   /* borrowed: the list holds the bytes objects for the whole call */
    Py_ssize_t len[MAX_TABLE];
} table_t;

static int table_init(table_t *t, PyObject *list) {
    t->list = list;
    t->n = PyList_GET_SIZE(list);
    if (t->n > MAX_TABLE) {
        PyErr_SetString(PyExc_ValueError, "table longer than MAX_TABLE");
        return -1;
    }
    for (int i = 0; i < BUCKETS; i++) t->head[i] = -1;
    for (Py_ssize_t i = t->n - 1; i >= 0; i--) {  /* so that each bucket lists ids in increasing order */
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "table entries must be bytes");
            return -1;
        }
        t->ptr[i] = PyBytes_AS_STRING(item);
        t->len[i] = PyBytes_GET_SIZE(item);
        int b = (int)(t->len[i] % BUCKETS);
        t->next[i] = t->head[b];
        t->head[b] = (int)i;
    }
    return 0;
}

/* The id of the span, appending it when new; -1 when the table is full; -2 on a Python error. */
static int table_id(table_t *t, const char *p, Py_ssize_t n) {
    int b = (int)(n % BUCKETS);
    for (int i = t->head[b]; i >= 0; i = t->next[i])
        if (t->len[i] == n && memcmp(t->ptr[i], p, (size_t)n) == 0) return i;
    if (t->n >= MAX_TABLE) return -1;
    PyObject *item = PyBytes_FromStringAndSize(p, n);
    if (item == NULL) return -2;
    if (PyList_Append(t->list, item) < 0) {
        Py_DECREF(item);
        return -2;
    }
    Py_DECREF(item);  /* the list holds it */
    int i = (int)t->n++;
    t->ptr[i] = PyBytes_AS_STRING(item);
    t->len[i] = n;
    t->next[i] = t->head[b];
    t->head[b] = i;
    return i;
}

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

static inline int lit(const char **pp, const char *e, const char *s, size_t n) {
    if ((size_t)(e - *pp) < n || memcmp(*pp, s, n) != 0) return 0;
    *pp += n;
    return 1;
}
#define LIT(s) lit(&p, e, s, sizeof(s) - 1)

/* N = (?:0|[1-9][0-9]{0,15}+)\.[0-9]{1,300}+ */
static inline int number(const char **pp, const char *e) {
    const char *p = *pp;
    if (p >= e) return 0;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        const char *stop = p + 16 < e ? p + 16 : e;
        p++;
        while (p < stop && IS_DIGIT(*p)) p++;
    } else {
        return 0;
    }
    if (p >= e || *p != '.') return 0;
    p++;
    const char *first = p, *stop = p + 300 < e ? p + 300 : e;
    while (p < stop && IS_DIGIT(*p)) p++;
    if (p == first) return 0;
    *pp = p;
    return 1;
}

/* S = "[^"\\\x00-\x1f]{1,1000}+" ; the content's span in *s, *n */
static inline int string(const char **pp, const char *e, const char **s, Py_ssize_t *n) {
    const char *p = *pp;
    if (p >= e || *p != '"') return 0;
    p++;
    const char *first = p, *stop = p + 1000 < e ? p + 1000 : e;
    while (p < stop) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20) break;
        p++;
    }
    if (p == first || p >= e || *p != '"') return 0;
    *s = first;
    *n = p - first;
    *pp = p + 1;
    return 1;
}

/* The value of a number the matcher accepted (int.frac digits) as Python's float() gives it: the correctly rounded
 * double (float() is David Gay's correctly rounded strtod). With M the digits as an integer and k the decimals:
 * up to 15 significant digits M and 10^k are exact doubles and M / 10^k is one correctly rounded IEEE division
 * (Clinger's fast path, as in strtod); up to 19 digits and 19 decimals -- a timestamp to the microsecond has 16 --
 * the quotient is computed exactly in 128-bit integers and rounded half to even by hand; anything else goes through
 * PyOS_string_to_double, float()'s own parser. tests/test_bulk_records.py compares all three with float(). */
static const double POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef unsigned __int128 u128;

static const uint64_t IPOW10[20] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull, 1000000000000000000ull,
    10000000000000000000ull};

static inline int bits(uint64_t x) { return 64 - __builtin_clzll(x); }  /* x > 0 */

/* m / 10^k, m > 0, k <= 19: Q = floor(m 2^s / 10^k) with 2^53 <= Q < 2^54, then its top 53 bits rounded. */
static double exact_quotient(uint64_t m, int k) {
    uint64_t d = IPOW10[k];
    int s = 54 - bits(m) + bits(d);
    u128 q, r;
    for (;;) {
        if (s >= 0) {
            u128 n = (u128)m << s;
            q = n / d;
            r = n % d;
        } else {
            u128 dd = (u128)d << -s;
            q = (u128)m / dd;
            r = (u128)m % dd;
        }
        if (q < ((u128)1 << 53)) {
            s++;
        } else if (q >= ((u128)1 << 54)) {
            s--;
        } else {
            break;
        }
    }
    uint64_t mant = (uint64_t)(q >> 1);
    if ((q & 1) && (r != 0 || (mant & 1))) mant++;  /* half to even; 2^53 is still exact */
    return ldexp((double)mant, 1 - s);
}

static int to_double(const char *p, double *out) {
    uint64_t m = 0;
    int digits = 0, decimals = -1;
    for (;; p++) {
        if (IS_DIGIT(*p)) {
            if (m != 0 || *p != '0') digits++;  /* leading zeros are not significant */
            if (digits > 19) return -1;
            m = m * 10 + (uint64_t)(*p - '0');
            if (decimals >= 0) decimals++;
        } else if (*p == '.' && decimals < 0) {
            decimals = 0;
        } else {
            break;
        }
    }
    if (decimals < 0 || decimals > 19) return -1;
    if (m == 0) {
        *out = 0.0;
    } else if (digits <= 15) {
        *out = (double)m / POW10[decimals];
    } else {
        *out = exact_quotient(m, decimals);
    }
    return 0;
}

typedef struct {
    const char *key, *t, *lat, *src;
    Py_ssize_t key_n, src_n;
} line_t;

/* Whether line [p, e) (e at its newline) has the exact shape; its spans in *out. */
static int match_line(const char *p, const char *e, line_t *out) {
    const char *s;
    Py_ssize_t n;
    if (!LIT("{\"v\":1,\"t\":")) return 0;
    out->t = p;
    if (!number(&p, e)) return 0;
    if (!LIT(",")) return 0;
    out->key = p;
    if (!LIT("\"channel\":\"")) return 0;
    if (!LIT("grpc\"") && !LIT("http\"")) return 0;
    if (!LIT(",\"items\":")) return 0;
    if (!LIT("null")) {
        if (p < e && *p == '0') {
            p++;
        } else if (p < e && *p >= '1' && *p <= '9') {
            const char *stop = p + 6 < e ? p + 6 : e;
            p++;
            while (p < stop && IS_DIGIT(*p)) p++;
        } else {
            return 0;
        }
    }
    if (!LIT(",\"version\":")) return 0;
    if (!LIT("null") && !string(&p, e, &s, &n)) return 0;
    if (!LIT(",\"status\":")) return 0;
    if (!string(&p, e, &s, &n)) return 0;
    out->key_n = p - out->key;
    if (!LIT(",\"latency_ms\":")) return 0;
    out->lat = p;
    if (!number(&p, e)) return 0;
    out->src = NULL;
    out->src_n = 0;
    if (LIT(",\"source\":")) {
        if (!string(&p, e, &s, &n)) return 0;
        out->src = s;
        out->src_n = n;
    }
    return LIT("}") && p == e;
}

/* A growable native array in a bytearray-free buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static int buf_put(buf_t *b, const void *x, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        char *d = PyMem_Realloc(b->data, cap);
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, x, n);
    b->len += n;
    return 0;
}

static PyObject *buf_bytes(buf_t *b) {
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
}

typedef struct {
    int values;
    Py_ssize_t n;                 /* lines in the open run */
    /* values false */
    Py_ssize_t *counts;           /* by key id, MAX_TABLE long */
    int order[MAX_TABLE];
    int n_order;
    /* values true */
    buf_t codes, ts, lats, srcs;
} run_t;

static int run_close(run_t *r, PyObject *out) {
    if (r->n == 0) return 0;
    PyObject *seg;
    if (r->values) {
        PyObject *c = buf_bytes(&r->codes), *t = buf_bytes(&r->ts), *l = buf_bytes(&r->lats), *s = buf_bytes(&r->srcs);
        seg = (c && t && l && s) ? Py_BuildValue("(nOOOO)", r->n, c, t, l, s) : NULL;
        Py_XDECREF(c);
        Py_XDECREF(t);
        Py_XDECREF(l);
        Py_XDECREF(s);
        r->codes.len = r->ts.len = r->lats.len = r->srcs.len = 0;
    } else {
        PyObject *order = PyList_New(r->n_order), *counts = PyList_New(r->n_order);
        if (order == NULL || counts == NULL) {
            Py_XDECREF(order);
            Py_XDECREF(counts);
            return -1;
        }
        for (int i = 0; i < r->n_order; i++) {
            int id = r->order[i];
            PyList_SET_ITEM(order, i, PyLong_FromLong(id));
            PyList_SET_ITEM(counts, i, PyLong_FromSsize_t(r->counts[id]));
            r->counts[id] = 0;
        }
        r->n_order = 0;
        seg = Py_BuildValue("(nNN)", r->n, order, counts);
    }
    r->n = 0;
    if (seg == NULL) return -1;
    int rc = PyList_Append(out, seg);
    Py_DECREF(seg);
    return rc;
}

static int gap_put(PyObject *out, Py_ssize_t start, Py_ssize_t end) {
    PyObject *seg = Py_BuildValue("(nn)", start, end);
    if (seg == NULL) return -1;
    int rc = PyList_Append(out, seg);
    Py_DECREF(seg);
    return rc;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t start, end;
    int values;
    PyObject *keys_list, *srcs_list;
    if (!PyArg_ParseTuple(args, "y*nnpO!O!:scan", &view, &start, &end, &values, &PyList_Type, &keys_list,
                          &PyList_Type, &srcs_list))
        return NULL;
    PyObject *out = NULL;
    table_t *keys = PyMem_Malloc(sizeof(table_t)), *srcs = PyMem_Malloc(sizeof(table_t));
    run_t run;
    memset(&run, 0, sizeof(run));
    run.values = values;
    run.counts = PyMem_Calloc(MAX_TABLE, sizeof(Py_ssize_t));
    if (keys == NULL || srcs == NULL || run.counts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (start < 0 || end > view.len || start > end) {
        PyErr_SetString(PyExc_ValueError, "start/end outside the buffer");
        goto done;
    }
    if (table_init(keys, keys_list) < 0 || table_init(srcs, srcs_list) < 0) goto done;
    out = PyList_New(0);
    if (out == NULL) goto done;

    const char *base = (const char *)view.buf, *p = base + start, *stop = base + end;
    Py_ssize_t gap = -1;  /* the start of the open gap, or -1 */
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *next = nl ? nl + 1 : stop;
        line_t line;
        int key = -1, src = 0, ok = nl != NULL && match_line(p, nl, &line);
        if (ok) {
            key = table_id(keys, line.key, line.key_n);
            if (key == -2) goto fail;
            if (values && line.src != NULL) {
                src = table_id(srcs, line.src, line.src_n);
                if (src == -2) goto fail;
                src += 1;  /* 0: no source; a full table (-1) becomes 0 and fails below */
                if (src == 0) key = -1;
            }
            ok = key >= 0;
        }
        double t = 0, lat = 0;
        if (ok && values) {
            char *endp;
            if (to_double(line.t, &t) < 0) {
                t = PyOS_string_to_double(line.t, &endp, NULL);
                if (t == -1.0 && PyErr_Occurred()) goto fail;
            }
            if (to_double(line.lat, &lat) < 0) {
                lat = PyOS_string_to_double(line.lat, &endp, NULL);
                if (lat == -1.0 && PyErr_Occurred()) goto fail;
            }
        }
        if (!ok) {
            if (gap < 0) {
                if (run_close(&run, out) < 0) goto fail;
                gap = p - base;
            }
        } else {
            if (gap >= 0) {
                if (gap_put(out, gap, p - base) < 0) goto fail;
                gap = -1;
            }
            run.n++;
            if (values) {
                uint16_t c = (uint16_t)key, s = (uint16_t)src;
                if (buf_put(&run.codes, &c, sizeof c) < 0 || buf_put(&run.ts, &t, sizeof t) < 0
                    || buf_put(&run.lats, &lat, sizeof lat) < 0 || buf_put(&run.srcs, &s, sizeof s) < 0)
                    goto fail;
            } else if (run.counts[key]++ == 0) {
                run.order[run.n_order++] = key;
            }
        }
        p = next;
    }
    if (gap >= 0) {
        if (gap_put(out, gap, end) < 0) goto fail;
    } else if (run_close(&run, out) < 0) {
        goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(keys);
    PyMem_Free(srcs);
    PyMem_Free(run.counts);
    PyMem_Free(run.codes.data);
    PyMem_Free(run.ts.data);
    PyMem_Free(run.lats.data);
    PyMem_Free(run.srcs.data);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(buf, start, end, values, keys, sources) -> segments: see the module's source for the format."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", "The records scanner (C backend of bulk.py).",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_TABLE", MAX_TABLE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
