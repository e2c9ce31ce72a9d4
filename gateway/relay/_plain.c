/*
 * The relay's two plain readings, compiled: a request head and a whole upstream answer of the
 * form almost every client and upstream sends, read in one pass over the bytes.
 *
 * read_request gives exactly what the Python reading gives (gateway/relay/heads.py:
 * _PLAIN_REQUEST, PLAIN_FIELD_LINE and _request), or None where it is not sure, and the Python
 * reading then runs: any head that is not in the plain form, a field name the lane's memo does
 * not know yet, an Authorization value whose first byte is not ASCII or a Cookie value with
 * any byte that is not, where the lane's verdict reads it (is_bearer and
 * may_name_keygate_cookie follow Python's Unicode case rules), and every request the relay
 * hands to aiohttp. whole_answer gives what ResponseHead's reading of the answer's head writes
 * (gateway/relay/response_head.py: _PLAIN_HEAD, _NOTABLE), or None and ResponseHead reads it.
 * Declining is always safe; the tests compare both with llhttp's reading
 * (tests/unit/gateway/test_relay_compiled.py).
 *
 * Written by hand, not generated: llhttp (httptools) already reads the heads this declines,
 * and no library reads the relay's memo of field names.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The lane's verdicts (gateway/relay/fields.py). */
enum { KEEP, DROP, BEARER, COOKIE, STAGES };

/* Longer Content-Length values are left to llhttp, which refuses what overflows. */
#define LONGEST_LENGTH 15

static unsigned char is_tchar[256];  /* RFC 9110 token characters */
static unsigned char is_target[256]; /* an origin-form target, in characters every parser takes */
static unsigned char is_value[256];  /* a field value: visible, blank or obs-text */

static PyObject *method_names[7];
static const char *const METHODS[7] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};

static void
fill_tables(void)
{
    const char *tchars = "!#$%&'*+-.^_`|~";
    const char *targets = "!$%&'()*+,-./:;=?@_~";
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        is_tchar[c] = alnum || (c != 0 && strchr(tchars, c) != NULL);
        is_target[c] = alnum || (c != 0 && strchr(targets, c) != NULL);
        is_value[c] = c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
    }
}

static int
lower_ascii(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Whether the n bytes at s are `word` (lower-case ASCII) in any case. */
static int
same_word(const char *s, Py_ssize_t n, const char *word)
{
    Py_ssize_t length = (Py_ssize_t)strlen(word);
    if (n != length)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (lower_ascii((unsigned char)s[i]) != word[i])
            return 0;
    return 1;
}

static int
same_bytes(PyObject *bytes, const char *word)
{
    return same_word(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes), word);
}

/*
 * The end of the field line starting at `p` (the index of its CR), with the value's span, or
 * -1 when it is not a PLAIN_FIELD_LINE: a token, one colon and one space, then nothing or a
 * run of value characters that neither starts nor ends with a blank, then CRLF.
 */
static Py_ssize_t
field_line(const unsigned char *s, Py_ssize_t p, Py_ssize_t n, Py_ssize_t *colon,
           Py_ssize_t *value)
{
    Py_ssize_t i = p;
    while (i < n && is_tchar[s[i]])
        i++;
    if (i == p || i + 1 >= n || s[i] != ':' || s[i + 1] != ' ')
        return -1;
    *colon = i;
    i += 2;
    *value = i;
    while (i < n && is_value[s[i]])
        i++;
    if (i + 1 >= n || s[i] != '\r' || s[i + 1] != '\n')
        return -1;
    if (i > *value) {
        unsigned char first = s[*value], last = s[i - 1];
        if (first == ' ' || first == '\t' || last == ' ' || last == '\t')
            return -1;
    }
    return i;
}

/*
 * is_bearer (gateway/pipeline/mutate.py) on a plain value: 1, 0, or -1 when only Python can
 * say (a first byte that is not ASCII: str.lstrip and str.lower know more than ASCII).
 */
static int
bearer(const unsigned char *v, Py_ssize_t n)
{
    if (n > 0 && v[0] >= 0x80)
        return -1;
    return n >= 6 && same_word((const char *)v, 6, "bearer");
}

/* may_name_keygate_cookie (gateway/pipeline/cookies.py): 1, 0, or -1 for non-ASCII values
 * (str.lower() turns the Kelvin sign into "k"). */
static int
names_keygate_cookie(const unsigned char *v, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (v[i] >= 0x80)
            return -1;
    for (Py_ssize_t i = 0; i + 3 <= n; i++)
        if (lower_ascii(v[i]) == 'k' && lower_ascii(v[i + 1]) == 'g' && v[i + 2] == '_')
            return 1;
    return 0;
}

/* Whether a Connection value names `token` (its comma-separated parts, blanks stripped). */
static int
connection_names(const unsigned char *v, Py_ssize_t n, const char *token)
{
    Py_ssize_t start = 0;
    while (start <= n) {
        Py_ssize_t end = start;
        while (end < n && v[end] != ',')
            end++;
        Py_ssize_t a = start, b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (same_word((const char *)v + a, b - a, token))
            return 1;
        start = end + 1;
    }
    return 0;
}

/* What the relay reads of a field, by the lower-case name in its memo entry (b"" for none). */
enum { READS_NOTHING, READS_LENGTH, READS_HOST, READS_AUTHORIZATION, READS_CONNECTION, READS_SLOW };

static int
reads(PyObject *lower)
{
    if (PyBytes_GET_SIZE(lower) == 0)
        return READS_NOTHING;
    if (same_bytes(lower, "content-length"))
        return READS_LENGTH;
    if (same_bytes(lower, "host"))
        return READS_HOST;
    if (same_bytes(lower, "authorization"))
        return READS_AUTHORIZATION;
    if (same_bytes(lower, "connection"))
        return READS_CONNECTION;
    return READS_SLOW; /* transfer-encoding, upgrade, expect: or a name this does not know */
}

/* The reading's state while it runs, released once at the end. */
typedef struct {
    PyObject *fields;        /* list of (name, value) */
    PyObject *authorization; /* list of str */
    char *lines;             /* the lane's lines, or NULL once the stages must decide */
    Py_ssize_t lines_length;
} Reading;

static void
release(Reading *r)
{
    Py_XDECREF(r->fields);
    Py_XDECREF(r->authorization);
    PyMem_Free(r->lines);
}

#define DECLINE() \
    do { \
        release(&r); \
        Py_RETURN_NONE; \
    } while (0)
#define FAIL() \
    do { \
        release(&r); \
        return NULL; \
    } while (0)

PyDoc_STRVAR(read_request_doc,
"read_request(head, kinds, remote, /)\n--\n\n"
"What gateway.relay.heads._request reads of a plain request head from ``remote``, as the\n"
"arguments of RelayRequest: (method, target, fields, remote, body_length, keep_alive, http10,\n"
"host, authorization, lane_lines); or None where the Python reading must decide. ``kinds``\n"
"is the lane's memo, FieldNames.kinds.");

static PyObject *
read_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "read_request(head: bytes, kinds: dict, remote: str)");
        return NULL;
    }
    PyObject *head = args[0], *kinds = args[1], *remote = args[2];
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(head);
    Py_ssize_t n = PyBytes_GET_SIZE(head);
    Reading r = {NULL, NULL, NULL, 0};

    /* The request line: a common method, an origin-form target, HTTP/1.1 or 1.0. */
    int method = -1;
    Py_ssize_t p = 0;
    for (int m = 0; m < 7; m++) {
        Py_ssize_t length = (Py_ssize_t)strlen(METHODS[m]);
        if (n > length && memcmp(s, METHODS[m], length) == 0 && s[length] == ' ') {
            method = m;
            p = length + 1;
            break;
        }
    }
    if (method < 0 || p >= n || s[p] != '/')
        Py_RETURN_NONE;
    Py_ssize_t target = p;
    while (p < n && is_target[s[p]])
        p++;
    Py_ssize_t target_end = p;
    if (n - p < 11 || memcmp(s + p, " HTTP/1.", 8) != 0 || (s[p + 8] != '0' && s[p + 8] != '1')
        || s[p + 9] != '\r' || s[p + 10] != '\n')
        Py_RETURN_NONE;
    int http10 = s[p + 8] == '0';
    p += 11;
    if (target_end - target >= 10 && memcmp(s + target, "/_keygate/", 10) == 0)
        Py_RETURN_NONE; /* keygate's own paths: aiohttp answers them */

    r.fields = PyList_New(0);
    r.authorization = PyList_New(0);
    r.lines = PyMem_Malloc(n > 0 ? n : 1);
    if (r.fields == NULL || r.authorization == NULL || r.lines == NULL) {
        if (r.lines == NULL)
            PyErr_NoMemory();
        FAIL();
    }
    long long length = -1;
    Py_ssize_t host = -1, host_length = 0;
    int hosts = 0, close = 0, keep_alive = 0;

    while (1) {
        if (n - p < 2)
            DECLINE();
        if (s[p] == '\r' && s[p + 1] == '\n') {
            if (p + 2 != n)
                DECLINE(); /* bytes after the blank line: not one head */
            break;
        }
        Py_ssize_t colon, value;
        Py_ssize_t end = field_line(s, p, n, &colon, &value);
        if (end < 0)
            DECLINE();
        const unsigned char *v = s + value;
        Py_ssize_t value_length = end - value;
        PyObject *name = PyBytes_FromStringAndSize((const char *)s + p, colon - p);
        if (name == NULL)
            FAIL();
        PyObject *kind = PyDict_GetItemWithError(kinds, name); /* borrowed */
        if (kind == NULL) {
            Py_DECREF(name);
            if (PyErr_Occurred())
                FAIL();
            DECLINE(); /* not in the memo yet: names.kind fills it, in Python */
        }
        /* Read the memo's entry before anything else runs (it is borrowed from the dict). */
        if (!PyTuple_CheckExact(kind) || PyTuple_GET_SIZE(kind) != 2
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(kind, 0))) {
            Py_DECREF(name);
            PyErr_SetString(PyExc_TypeError, "kinds holds (lower: bytes, verdict: int) pairs");
            FAIL();
        }
        int read_as = reads(PyTuple_GET_ITEM(kind, 0));
        long verdict = PyLong_AsLong(PyTuple_GET_ITEM(kind, 1));
        if (verdict == -1 && PyErr_Occurred()) {
            Py_DECREF(name);
            FAIL();
        }
        if (read_as == READS_SLOW || verdict < KEEP || verdict > STAGES) {
            Py_DECREF(name);
            DECLINE(); /* aiohttp's: other framing, protocol switches, interim answers */
        }
        PyObject *pair = NULL, *value_bytes = PyBytes_FromStringAndSize((const char *)v,
                                                                        value_length);
        if (value_bytes != NULL)
            pair = PyTuple_Pack(2, name, value_bytes);
        Py_DECREF(name);
        Py_XDECREF(value_bytes);
        if (pair == NULL)
            FAIL();
        int appended = PyList_Append(r.fields, pair);
        Py_DECREF(pair);
        if (appended < 0)
            FAIL();
        int skip = 0;
        if (read_as == READS_LENGTH) {
            if (length >= 0 || value_length == 0 || value_length > LONGEST_LENGTH)
                DECLINE(); /* llhttp judges it */
            length = 0;
            for (Py_ssize_t i = 0; i < value_length; i++) {
                if (v[i] < '0' || v[i] > '9')
                    DECLINE();
                length = length * 10 + (v[i] - '0');
            }
        }
        else if (read_as == READS_HOST) {
            hosts++;
            if (host < 0) {
                host = value;
                host_length = value_length;
            }
        }
        else if (read_as == READS_AUTHORIZATION) {
            PyObject *text = PyUnicode_DecodeUTF8((const char *)v, value_length,
                                                  "surrogateescape");
            if (text == NULL)
                FAIL();
            appended = PyList_Append(r.authorization, text);
            Py_DECREF(text);
            if (appended < 0)
                FAIL();
            if (verdict == BEARER) {
                int is = bearer(v, value_length);
                if (is < 0)
                    DECLINE();
                skip = is; /* not for the upstream */
            }
        }
        else if (read_as == READS_CONNECTION) {
            close |= connection_names(v, value_length, "close");
            keep_alive |= connection_names(v, value_length, "keep-alive");
        }
        if (!skip && r.lines != NULL && verdict != DROP) {
            int keep = verdict == KEEP;
            if (verdict == STAGES) {
                PyMem_Free(r.lines);
                r.lines = NULL;
            }
            else if (verdict == BEARER) {
                int is = bearer(v, value_length);
                if (is < 0)
                    DECLINE();
                keep = !is;
            }
            else if (verdict == COOKIE) {
                int names = names_keygate_cookie(v, value_length);
                if (names < 0)
                    DECLINE();
                if (names) {
                    PyMem_Free(r.lines);
                    r.lines = NULL;
                }
                keep = !names;
            }
            else if (verdict != KEEP) {
                DECLINE();
            }
            if (keep && r.lines != NULL) {
                /* The line as it came: "name: value\r\n" is what the lane writes. */
                memcpy(r.lines + r.lines_length, s + p, end + 2 - p);
                r.lines_length += end + 2 - p;
            }
        }
        p = end + 2;
    }
    if (hosts > 1 || (hosts == 0 && !http10))
        DECLINE(); /* aiohttp answers a second Host, or none in HTTP/1.1 */

    PyObject *target_bytes = NULL, *host_text = NULL, *lines = NULL, *result = NULL;
    target_bytes = PyBytes_FromStringAndSize((const char *)s + target, target_end - target);
    host_text = PyUnicode_DecodeUTF8(host < 0 ? "" : (const char *)s + host, host_length,
                                     "surrogateescape");
    if (r.lines != NULL)
        lines = PyBytes_FromStringAndSize(r.lines, r.lines_length);
    else
        lines = Py_NewRef(Py_None);
    if (target_bytes != NULL && host_text != NULL && lines != NULL) {
        /* RFC 9112 §9.3: HTTP/1.1 stays open unless told "close"; HTTP/1.0 only when asked. */
        int alive = http10 ? keep_alive : !close;
        result = Py_BuildValue("(OOOOLOOOOO)", method_names[method], target_bytes, r.fields,
                               remote, length < 0 ? 0LL : length, alive ? Py_True : Py_False,
                               http10 ? Py_True : Py_False, host_text, r.authorization, lines);
    }
    Py_XDECREF(target_bytes);
    Py_XDECREF(host_text);
    Py_XDECREF(lines);
    release(&r);
    return result;
}

/* The lower-case names whole_answer looks for (response_head._NOTABLE_NAMES). */
static PyObject *notable_names;

PyDoc_STRVAR(set_notable_doc,
"set_notable(names, /)\n--\n\n"
"The lower-case field names (a tuple of bytes) that keep an answer from whole_answer's\n"
"one step unless the only one is Content-Length: response_head._NOTABLE_NAMES.");

static PyObject *
set_notable(PyObject *module, PyObject *names)
{
    if (!PyTuple_CheckExact(names)) {
        PyErr_SetString(PyExc_TypeError, "set_notable(names: tuple[bytes, ...])");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "set_notable(names: tuple[bytes, ...])");
            return NULL;
        }
    }
    Py_XSETREF(notable_names, Py_NewRef(names));
    Py_RETURN_NONE;
}

static int
notable(const unsigned char *name, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(notable_names); i++) {
        PyObject *word = PyTuple_GET_ITEM(notable_names, i);
        if (PyBytes_GET_SIZE(word) == n && same_word((const char *)name, n, PyBytes_AS_STRING(word)))
            return 1;
    }
    return 0;
}

PyDoc_STRVAR(whole_answer_doc,
"whole_answer(data, lines, ending, /)\n--\n\n"
"(status, what the client gets) when ``data`` is one whole plain answer whose only notable\n"
"field is its Content-Length, with that many body bytes after the head: the head as it came,\n"
"``lines`` after its fields, then ``ending`` and the body. None for anything else\n"
"(response_head.whole_answer says which answers those are).");

static PyObject *
whole_answer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])
        || !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "whole_answer(data: bytes, lines: bytes, ending: bytes)");
        return NULL;
    }
    if (notable_names == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_notable has not been called");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    /* The status line: HTTP/1.1, a status, a reason in value characters. */
    if (n < 14 || memcmp(s, "HTTP/1.1 ", 9) != 0 || s[9] < '1' || s[9] > '9' || s[10] < '0'
        || s[10] > '9' || s[11] < '0' || s[11] > '9' || s[12] != ' ')
        Py_RETURN_NONE;
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status < 200 || status == 204 || status == 304)
        Py_RETURN_NONE;
    Py_ssize_t p = 13;
    while (p < n && is_value[s[p]])
        p++;
    if (n - p < 2 || s[p] != '\r' || s[p + 1] != '\n')
        Py_RETURN_NONE;
    p += 2;
    long long length = -1;
    while (1) {
        if (n - p < 2)
            Py_RETURN_NONE;
        if (s[p] == '\r' && s[p + 1] == '\n')
            break;
        Py_ssize_t colon, value;
        Py_ssize_t end = field_line(s, p, n, &colon, &value);
        if (end < 0)
            Py_RETURN_NONE;
        if (notable(s + p, colon - p)) {
            Py_ssize_t value_length = end - value;
            if (length >= 0 || !same_word((const char *)s + p, colon - p, "content-length")
                || value_length == 0 || value_length > LONGEST_LENGTH)
                Py_RETURN_NONE;
            length = 0;
            for (Py_ssize_t i = value; i < end; i++) {
                if (s[i] < '0' || s[i] > '9')
                    Py_RETURN_NONE;
                length = length * 10 + (s[i] - '0');
            }
        }
        p = end + 2;
    }
    Py_ssize_t head_end = p + 2;
    if (length < 0 || length != n - head_end)
        Py_RETURN_NONE;
    Py_ssize_t lines_length = PyBytes_GET_SIZE(args[1]), ending_length = PyBytes_GET_SIZE(args[2]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n + lines_length + ending_length - 2);
    if (out == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(out);
    memcpy(o, s, p);
    memcpy(o + p, PyBytes_AS_STRING(args[1]), lines_length);
    memcpy(o + p + lines_length, PyBytes_AS_STRING(args[2]), ending_length);
    memcpy(o + p + lines_length + ending_length, s + head_end, n - head_end);
    PyObject *result = Py_BuildValue("(iN)", status, out);
    return result;
}

static PyMethodDef methods[] = {
    {"read_request", (PyCFunction)(void (*)(void))read_request, METH_FASTCALL, read_request_doc},
    {"whole_answer", (PyCFunction)(void (*)(void))whole_answer, METH_FASTCALL, whole_answer_doc},
    {"set_notable", set_notable, METH_O, set_notable_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway.relay._plain",
    .m_doc = "The relay's plain readings of request heads and whole answers, compiled.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__plain(void)
{
    fill_tables();
    for (int m = 0; m < 7; m++) {
        if (method_names[m] == NULL) {
            method_names[m] = PyUnicode_InternFromString(METHODS[m]);
            if (method_names[m] == NULL)
                return NULL;
        }
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    const char *verdicts[] = {"KEEP", "DROP", "BEARER", "COOKIE", "STAGES"};
    for (int v = 0; v < 5; v++) {
        if (PyModule_AddIntConstant(module, verdicts[v], v) < 0) {
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
