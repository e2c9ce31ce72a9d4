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
 *
 * Warm.decide, further down, is the stages' decision for the commonest bearer request (a warm
 * token with a live limiter lease), on the Python objects' own state; gateway/relay/warm.py
 * says what it stands for, and tests/unit/gateway/test_relay_warm.py compares it with the
 * stages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
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

/* -- The warm-token decision ---------------------------------------------------------------
 *
 * What the stages decide for a request whose only Authorization value is "Bearer <token>"
 * with a token warm in the L1 cache, on a route with no scope and no workspace to check, when
 * the token's limiter lease still holds a token: the identity and the rate-limit decision,
 * with the same effects on the cache, the lease book and the counts (gateway/relay/warm.py
 * says which Python each step stands for). Anything else is None before any effect, and the
 * stages decide as before. The state is the Python objects' own (the cache's entries, the
 * authenticator's identities, the lease book's states), read and written through the C API;
 * only the three counts of a decided request and its usage count wait here until drain().
 */

#define MINUTE_MS 60000.0 /* limit_lease.MINUTE_MS */

typedef struct {
    PyObject_HEAD
    PyObject *cache;      /* L1Cache: its listening flag, its clock */
    PyObject *entries;    /* its entries: public id -> (mac, result, until, stored_at) */
    PyObject *keyed;      /* its keyed BLAKE2s state */
    PyObject *identities; /* the bearer authenticator's: id(result) -> (result, identity) */
    PyObject *states;     /* the lease book's: token id -> _KeyState */
    PyObject *decision;   /* the RateDecision class */
    PyObject *batch;      /* the metric batch: pending, schedule() */
    PyObject *usage;      /* (token id, minute) -> requests since drain(), or NULL: no usage */
    double lease_seconds, unheard_seconds;
    Py_ssize_t id_start, id_length, token_length;
    long long default_limit;
    long long decided; /* requests decided since drain() */
} Warm;

static PyObject *s_listening, *s_clock, *s_copy, *s_update, *s_digest, *s_move_to_end,
    *s_token_id, *s_rate_limit, *s_limit, *s_tokens, *s_remaining, *s_full_ms, *s_asked_at,
    *s_expires_at, *s_window_start, *s_count, *s_previous, *s_pending, *s_schedule;

static int
intern_names(void)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_listening, "listening"}, {&s_clock, "_clock"}, {&s_copy, "copy"},
        {&s_update, "update"}, {&s_digest, "digest"}, {&s_move_to_end, "move_to_end"},
        {&s_token_id, "token_id"}, {&s_rate_limit, "rate_limit"}, {&s_limit, "limit"},
        {&s_tokens, "tokens"}, {&s_remaining, "remaining"}, {&s_full_ms, "full_ms"},
        {&s_asked_at, "asked_at"}, {&s_expires_at, "expires_at"},
        {&s_window_start, "window_start"}, {&s_count, "count"}, {&s_previous, "previous"},
        {&s_pending, "pending"}, {&s_schedule, "schedule"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].slot == NULL
            && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    }
    return 0;
}

static int
warm_init(Warm *self, PyObject *args, PyObject *kwargs)
{
    PyObject *cache, *entries, *keyed, *identities, *states, *decision, *batch;
    int usage;
    double lease_seconds, unheard_seconds;
    Py_ssize_t id_start, id_length, token_length;
    long long default_limit;
    static char *keywords[] = {"cache", "entries", "keyed", "identities", "states", "decision",
        "batch", "usage", "lease_seconds", "unheard_seconds", "id_start", "id_length",
        "token_length", "default_limit", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OO!OO!O!OOpddnnnL:Warm", keywords, &cache,
            &PyDict_Type, &entries, &keyed, &PyDict_Type, &identities, &PyDict_Type, &states,
            &decision, &batch, &usage, &lease_seconds, &unheard_seconds, &id_start, &id_length,
            &token_length, &default_limit))
        return -1;
    if (!PyType_Check(decision) || !PyType_IsSubtype((PyTypeObject *)decision, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Warm: decision must be a tuple class");
        return -1;
    }
    Py_XSETREF(self->cache, Py_NewRef(cache));
    Py_XSETREF(self->entries, Py_NewRef(entries));
    Py_XSETREF(self->keyed, Py_NewRef(keyed));
    Py_XSETREF(self->identities, Py_NewRef(identities));
    Py_XSETREF(self->states, Py_NewRef(states));
    Py_XSETREF(self->decision, Py_NewRef(decision));
    Py_XSETREF(self->batch, Py_NewRef(batch));
    Py_CLEAR(self->usage);
    if (usage && (self->usage = PyDict_New()) == NULL)
        return -1;
    self->lease_seconds = lease_seconds;
    self->unheard_seconds = unheard_seconds;
    self->id_start = id_start;
    self->id_length = id_length;
    self->token_length = token_length;
    self->default_limit = default_limit;
    self->decided = 0;
    return 0;
}

static int
warm_traverse(Warm *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cache);
    Py_VISIT(self->entries);
    Py_VISIT(self->keyed);
    Py_VISIT(self->identities);
    Py_VISIT(self->states);
    Py_VISIT(self->decision);
    Py_VISIT(self->batch);
    Py_VISIT(self->usage);
    return 0;
}

static int
warm_clear(Warm *self)
{
    Py_CLEAR(self->cache);
    Py_CLEAR(self->entries);
    Py_CLEAR(self->keyed);
    Py_CLEAR(self->identities);
    Py_CLEAR(self->states);
    Py_CLEAR(self->decision);
    Py_CLEAR(self->batch);
    Py_CLEAR(self->usage);
    return 0;
}

static void
warm_dealloc(Warm *self)
{
    PyObject_GC_UnTrack(self);
    warm_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An attribute of `object` as a C double or long long; -1 with an exception set if it is not
 * a number (a float, or an int that fits). */
static int
number_attribute(PyObject *object, PyObject *name, double *d, long long *ll)
{
    PyObject *value = PyObject_GetAttr(object, name);
    if (value == NULL)
        return -1;
    int ok = 0;
    if (d != NULL) {
        *d = PyFloat_AsDouble(value);
        if (*d == -1.0 && PyErr_Occurred())
            ok = -1;
    } else if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "an int was expected");
        ok = -1;
    } else {
        *ll = PyLong_AsLongLong(value);
        if (*ll == -1 && PyErr_Occurred())
            ok = -1;
    }
    Py_DECREF(value);
    return ok;
}

static int
set_number(PyObject *object, PyObject *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int ok = PyObject_SetAttr(object, name, value);
    Py_DECREF(value);
    return ok;
}

/* The keyed BLAKE2s MAC of the token `text` (L1Cache._mac). */
static PyObject *
token_mac(Warm *self, const char *text, Py_ssize_t n)
{
    PyObject *mac = PyObject_CallMethodNoArgs(self->keyed, s_copy);
    if (mac == NULL)
        return NULL;
    PyObject *data = PyBytes_FromStringAndSize(text, n);
    if (data == NULL) {
        Py_DECREF(mac);
        return NULL;
    }
    PyObject *done = PyObject_CallMethodOneArg(mac, s_update, data);
    Py_DECREF(data);
    if (done == NULL) {
        Py_DECREF(mac);
        return NULL;
    }
    Py_DECREF(done);
    PyObject *digest = PyObject_CallMethodNoArgs(mac, s_digest);
    Py_DECREF(mac);
    return digest;
}

/* hmac.compare_digest for two bytes objects: the time taken does not depend on where they
 * differ. */
static int
same_mac(PyObject *a, PyObject *b)
{
    if (!PyBytes_Check(a) || !PyBytes_Check(b) || PyBytes_GET_SIZE(a) != PyBytes_GET_SIZE(b))
        return 0;
    const unsigned char *x = (const unsigned char *)PyBytes_AS_STRING(a);
    const unsigned char *y = (const unsigned char *)PyBytes_AS_STRING(b);
    unsigned char differ = 0;
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(a); i++)
        differ |= x[i] ^ y[i];
    return differ == 0;
}

/* The facts decide() found, before any effect: the entry's public id, its identity, the
 * token's id and lease state, the cache's clock, the limit, and the lease state's fields. */
typedef struct {
    PyObject *public_id, *identity, *token_id, *state; /* new references */
    double wall;
    long long limit, tokens, remaining, count;
    double full_ms, asked_at, window_start;
} Found;

static void
found_clear(Found *f)
{
    Py_CLEAR(f->public_id);
    Py_CLEAR(f->identity);
    Py_CLEAR(f->token_id);
    Py_CLEAR(f->state);
}

/* 1: all of it is as the compiled decision needs; 0: decline; -1: an error. */
static int
look(Warm *self, PyObject *value, double now, Found *f)
{
    /* BearerAuthenticator.authenticate_now: "Bearer " in any case, then a token's length;
     * L1Cache.exact: ASCII. */
    const Py_ssize_t scheme = 7;
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)
        || PyUnicode_GET_LENGTH(value) != scheme + self->token_length
        || self->id_start + self->id_length > self->token_length)
        return 0;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(value);
    if (!same_word(s, 6, "bearer") || s[6] != ' ')
        return 0;
    const char *text = s + scheme;
    Py_ssize_t text_length = PyUnicode_GET_LENGTH(value) - scheme;
    /* L1Cache._lookup */
    f->public_id = PyUnicode_FromStringAndSize(text + self->id_start, self->id_length);
    if (f->public_id == NULL)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(self->entries, f->public_id);
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4)
        return 0;
    Py_INCREF(entry);
    int answer = -1;
    PyObject *clock = NULL, *reading = NULL, *listening = NULL, *mac = NULL;
    double until = PyFloat_AsDouble(PyTuple_GET_ITEM(entry, 2));
    double stored_at = PyFloat_AsDouble(PyTuple_GET_ITEM(entry, 3));
    if (PyErr_Occurred())
        goto done;
    if ((clock = PyObject_GetAttr(self->cache, s_clock)) == NULL
        || (reading = PyObject_CallNoArgs(clock)) == NULL)
        goto done;
    f->wall = PyFloat_AsDouble(reading);
    if (f->wall == -1.0 && PyErr_Occurred())
        goto done;
    if (f->wall >= until) {
        answer = 0;
        goto done;
    }
    if ((listening = PyObject_GetAttr(self->cache, s_listening)) == NULL)
        goto done;
    int heard = PyObject_IsTrue(listening);
    if (heard < 0)
        goto done;
    if (!heard && f->wall - stored_at >= self->unheard_seconds) {
        answer = 0;
        goto done;
    }
    if ((mac = token_mac(self, text, text_length)) == NULL)
        goto done;
    if (!same_mac(PyTuple_GET_ITEM(entry, 0), mac)) {
        answer = 0; /* a wrong secret: the stages refuse it */
        goto done;
    }
    /* BearerAuthenticator._decided: the identity made for this result. */
    PyObject *result = PyTuple_GET_ITEM(entry, 1);
    PyObject *key = PyLong_FromVoidPtr(result);
    if (key == NULL)
        goto done;
    PyObject *known = PyDict_GetItemWithError(self->identities, key);
    Py_DECREF(key);
    if (known == NULL) {
        answer = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2
        || PyTuple_GET_ITEM(known, 0) != result) {
        answer = 0;
        goto done;
    }
    f->identity = Py_NewRef(PyTuple_GET_ITEM(known, 1));
    /* Pipeline._limit_now: the token's limit, its lease (LeaseBook.take's first case). */
    if ((f->token_id = PyObject_GetAttr(f->identity, s_token_id)) == NULL)
        goto done;
    if (!PyUnicode_CheckExact(f->token_id)) {
        answer = 0;
        goto done;
    }
    PyObject *rate_limit = PyObject_GetAttr(f->identity, s_rate_limit);
    if (rate_limit == NULL)
        goto done;
    if (rate_limit != Py_None && !PyLong_Check(rate_limit)) {
        Py_DECREF(rate_limit);
        answer = 0;
        goto done;
    }
    f->limit = rate_limit != Py_None ? PyLong_AsLongLong(rate_limit) : self->default_limit;
    Py_DECREF(rate_limit);
    if (f->limit == -1 && PyErr_Occurred())
        goto done;
    if (f->limit == 0)
        f->limit = self->default_limit; /* `identity.rate_limit or the default` */
    if (f->limit < 1 || f->limit > (1LL << 40)) {
        answer = 0;
        goto done;
    }
    PyObject *state = PyDict_GetItemWithError(self->states, f->token_id);
    if (state == NULL) {
        answer = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    f->state = Py_NewRef(state);
    long long limit;
    double expires_at;
    if (number_attribute(state, s_limit, NULL, &limit) < 0
        || number_attribute(state, s_tokens, NULL, &f->tokens) < 0
        || number_attribute(state, s_expires_at, &expires_at, NULL) < 0
        || number_attribute(state, s_remaining, NULL, &f->remaining) < 0
        || number_attribute(state, s_full_ms, &f->full_ms, NULL) < 0
        || number_attribute(state, s_asked_at, &f->asked_at, NULL) < 0
        || number_attribute(state, s_window_start, &f->window_start, NULL) < 0
        || number_attribute(state, s_count, NULL, &f->count) < 0)
        goto done;
    /* Below 2**37 tokens, tokens * 60000 is exact as a double, and so is the quotient's
     * rounding: Python's int division gives the same float. */
    answer = limit == f->limit && f->tokens > 0 && f->tokens < (1LL << 37) && now < expires_at;
done:
    Py_DECREF(entry);
    Py_XDECREF(clock);
    Py_XDECREF(reading);
    Py_XDECREF(listening);
    Py_XDECREF(mac);
    if (answer < 0 && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear(); /* something not of the shape expected: the stages decide */
        answer = 0;
    }
    return answer;
}

/* LeaseBook._count: one more request in the key's demand. */
static int
count_demand(Warm *self, Found *f, double now)
{
    PyObject *state = f->state;
    long long count = f->count;
    double age = now - f->window_start;
    if (age >= self->lease_seconds) {
        long long previous = age < 2 * self->lease_seconds ? count : 0;
        if (set_number(state, s_previous, PyLong_FromLongLong(previous)) < 0
            || set_number(state, s_window_start, PyFloat_FromDouble(now)) < 0)
            return -1;
        count = 0;
    }
    return set_number(state, s_count, PyLong_FromLongLong(count + 1));
}

static int
count_usage(Warm *self, PyObject *token_id, double wall)
{
    if (self->usage == NULL)
        return 0;
    /* UsageRecorder.record's key: (token id, int(time.time()) // 60) */
    long long seconds = (long long)wall, minute = seconds / 60 - (seconds % 60 < 0);
    PyObject *key = Py_BuildValue("(OL)", token_id, minute);
    if (key == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(self->usage, key);
    long long n = known != NULL ? PyLong_AsLongLong(known) : 0;
    PyObject *count = PyErr_Occurred() ? NULL : PyLong_FromLongLong(n + 1);
    int ok = count == NULL ? -1 : PyDict_SetItem(self->usage, key, count);
    Py_XDECREF(count);
    Py_DECREF(key);
    return ok;
}

/* LeaseBook.take's lease answer: one token from the lease, the decision it reports. */
static PyObject *
take_token(Warm *self, Found *f, double now, double *full_ms, long long *remaining)
{
    long long tokens = f->tokens - 1;
    if (set_number(f->state, s_tokens, PyLong_FromLongLong(tokens)) < 0)
        return NULL;
    double elapsed_ms = (now - f->asked_at) * 1000;
    /* max(0.0, full_ms - tokens * MINUTE_MS / limit - elapsed_ms), as Python computes it */
    double left = f->full_ms - (double)tokens * MINUTE_MS / (double)f->limit - elapsed_ms;
    *full_ms = left > 0.0 ? left : 0.0;
    *remaining = f->remaining + tokens > 0 ? f->remaining + tokens : 0;
    /* limit_lease.decision(True, limit, remaining, full_ms, 0.0) */
    PyObject *fields = Py_BuildValue("(OLLdiO)", Py_True, f->limit, *remaining, *full_ms / 1000,
                                     0, Py_False);
    if (fields == NULL)
        return NULL;
    PyObject *args = PyTuple_Pack(1, fields);
    Py_DECREF(fields);
    if (args == NULL)
        return NULL;
    PyObject *decision = PyTuple_Type.tp_new((PyTypeObject *)self->decision, args, NULL);
    Py_DECREF(args);
    return decision;
}

/* limit.rate_limit_lines */
static PyObject *
rate_limit_lines(long long limit, long long remaining, double reset_after)
{
    double up = ceil(reset_after);
    long long reset = up > 0 ? (long long)up : 0;
    char lines[400];
    int n = snprintf(lines, sizeof lines,
        "X-RateLimit-Limit: %lld\r\nX-RateLimit-Remaining: %lld\r\nX-RateLimit-Reset: %lld\r\n"
        "RateLimit-Policy: \"per-token\";q=%lld;w=60\r\nRateLimit: \"per-token\";r=%lld;t=%lld\r\n",
        limit, remaining, reset, limit, remaining, reset);
    if (n < 0 || n >= (int)sizeof lines) {
        PyErr_SetString(PyExc_OverflowError, "rate-limit lines too long");
        return NULL;
    }
    return PyBytes_FromStringAndSize(lines, n);
}

PyDoc_STRVAR(decide_doc,
"decide($self, value, now, /)\n--\n\n"
"(identity, decision, rate-limit lines) for the Authorization ``value`` of a request on a\n"
"route with no scope and no workspace, ``now`` on the monotonic clock, when the token is warm\n"
"and its lease holds a token; taken and counted as the stages would. None, with no effect,\n"
"for anything else: then the stages decide.");

static PyObject *
warm_decide(Warm *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyFloat_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decide(value: str, now: float)");
        return NULL;
    }
    double now = PyFloat_AS_DOUBLE(args[1]);
    Found f = {0};
    int found = look(self, args[0], now, &f);
    if (found <= 0) {
        found_clear(&f);
        if (found < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *answer = NULL, *decision = NULL, *lines = NULL, *moved;
    double full_ms;
    long long remaining;
    /* The effects, in the stages' order: the cache entry used (L1Cache._lookup), the token
     * taken (LeaseBook.take), the counts (MetricBatch.count, UsageRecorder.record). */
    if ((moved = PyObject_CallMethodOneArg(self->entries, s_move_to_end, f.public_id)) == NULL)
        goto done;
    Py_DECREF(moved);
    if ((decision = take_token(self, &f, now, &full_ms, &remaining)) == NULL)
        goto done;
    if ((moved = PyObject_CallMethodOneArg(self->states, s_move_to_end, f.token_id)) == NULL)
        goto done;
    Py_DECREF(moved);
    if (count_demand(self, &f, now) < 0 || count_usage(self, f.token_id, f.wall) < 0)
        goto done;
    self->decided++;
    PyObject *pending = PyObject_GetAttr(self->batch, s_pending);
    if (pending == NULL)
        goto done;
    int scheduled = PyObject_IsTrue(pending);
    Py_DECREF(pending);
    if (scheduled < 0)
        goto done;
    if (!scheduled) {
        PyObject *none = PyObject_CallMethodNoArgs(self->batch, s_schedule);
        if (none == NULL)
            goto done;
        Py_DECREF(none);
    }
    if ((lines = rate_limit_lines(f.limit, remaining, full_ms / 1000)) == NULL)
        goto done;
    answer = PyTuple_Pack(3, f.identity, decision, lines);
done:
    Py_XDECREF(decision);
    Py_XDECREF(lines);
    found_clear(&f);
    return answer;
}

PyDoc_STRVAR(drain_doc,
"drain($self, /)\n--\n\n"
"(requests decided, usage) since the last drain: usage maps (token id, minute) to requests\n"
"(an empty dict when usage is not kept).");

static PyObject *
warm_drain(Warm *self, PyObject *unused)
{
    PyObject *usage = PyDict_New();
    if (usage == NULL)
        return NULL;
    if (self->usage != NULL) {
        PyObject *taken = self->usage;
        self->usage = usage;
        usage = taken;
    }
    long long decided = self->decided;
    self->decided = 0;
    return Py_BuildValue("(LN)", decided, usage);
}

static PyMethodDef warm_methods[] = {
    {"decide", (PyCFunction)(void (*)(void))warm_decide, METH_FASTCALL, decide_doc},
    {"drain", (PyCFunction)warm_drain, METH_NOARGS, drain_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WarmType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.relay._plain.Warm",
    .tp_doc = PyDoc_STR("The warm-token decision, compiled (gateway/relay/warm.py)."),
    .tp_basicsize = sizeof(Warm),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)warm_init,
    .tp_dealloc = (destructor)warm_dealloc,
    .tp_traverse = (traverseproc)warm_traverse,
    .tp_clear = (inquiry)warm_clear,
    .tp_methods = warm_methods,
};

static PyMethodDef methods[] = {
    {"read_request", (PyCFunction)(void (*)(void))read_request, METH_FASTCALL, read_request_doc},
    {"whole_answer", (PyCFunction)(void (*)(void))whole_answer, METH_FASTCALL, whole_answer_doc},
    {"set_notable", set_notable, METH_O, set_notable_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway.relay._plain",
    .m_doc = "The relay's plain readings of request heads and whole answers, and its warm-token "
             "decision, compiled.",
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
    if (intern_names() < 0 || PyType_Ready(&WarmType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddType(module, &WarmType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    const char *verdicts[] = {"KEEP", "DROP", "BEARER", "COOKIE", "STAGES"};
    for (int v = 0; v < 5; v++) {
        if (PyModule_AddIntConstant(module, verdicts[v], v) < 0) {
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
