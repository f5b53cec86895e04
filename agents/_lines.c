/* The node agent's native line path (logtide.agents._lines): the per-line work of a read chunk in C.
 *
 * It reproduces, byte for byte, what the pure-Python path (agents/line_path.py, agents/parser/cri.py,
 * parser/timestamps.py, plain.py, logtide/envelope.py EventTemplate, tracked_file.py event_id) gives;
 * tests/agents/test_line_path.py proves it with hypothesis on random and hostile input.
 *
 *   frame(kind, lines, limit) -> list        kind 0 plain, 1 CRI, 2 docker. For each line (bytes, without
 *       its newline) the tuple (time_ns | None, stream, text) when it is a complete, well-formed line
 *       of at most `limit` bytes whose message is valid UTF-8; None for every other line (the caller
 *       gives it to the Python parser, which handles bad input, pieces and invalid UTF-8).
 *   record(prefix, offset, time, observed, ingest, body, tail) -> (id, value)
 *       the event id (BLAKE2b-128 of prefix + decimal offset, hex) and the envelope JSON of a
 *       one-line event without severity: its own fields, then the per-file shared part `tail`.
 *   parse_ts(bytes) -> int | None             an RFC 3339 timestamp to Unix nanoseconds.
 *   event_id(prefix, offset) -> str
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LIT(x) (sizeof(x) - 1)

/* ---- BLAKE2b (RFC 7693), unkeyed, 16-byte digest: hashlib.blake2b(data, digest_size=16) ---- */

static const uint64_t B2_IV[8] = {
    0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
    0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL};

static const uint8_t B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

#define ROTR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
#define B2_G(a, b, c, d, x, y)                  \
    do {                                         \
        v[a] = v[a] + v[b] + (x);                \
        v[d] = ROTR64(v[d] ^ v[a], 32);          \
        v[c] = v[c] + v[d];                      \
        v[b] = ROTR64(v[b] ^ v[c], 24);          \
        v[a] = v[a] + v[b] + (y);                \
        v[d] = ROTR64(v[d] ^ v[a], 16);          \
        v[c] = v[c] + v[d];                      \
        v[b] = ROTR64(v[b] ^ v[c], 63);          \
    } while (0)

static void b2_compress(uint64_t h[8], const uint8_t block[128], uint64_t counter, int last) {
    uint64_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = B2_IV[i];
    }
    v[12] ^= counter;
    if (last) v[14] = ~v[14];
    for (int i = 0; i < 16; i++) {
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--) w = (w << 8) | block[8 * i + j];
        m[i] = w;
    }
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = B2_SIGMA[r];
        B2_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* BLAKE2b-128 of a + b, written as 32 lowercase hex characters into out. */
static void b2_hex(const uint8_t *a, Py_ssize_t alen, const uint8_t *b, Py_ssize_t blen, char out[32]) {
    static const char HEX[] = "0123456789abcdef";
    uint64_t h[8];
    uint8_t block[128];
    Py_ssize_t fill = 0;
    uint64_t counter = 0;
    memcpy(h, B2_IV, sizeof h);
    h[0] ^= 0x01010000ULL ^ 16;
    const uint8_t *parts[2] = {a, b};
    Py_ssize_t lens[2] = {alen, blen};
    for (int p = 0; p < 2; p++) {
        const uint8_t *src = parts[p];
        Py_ssize_t n = lens[p];
        while (n > 0) {
            if (fill == 128) {           /* a full block and more input: not the last one */
                counter += 128;
                b2_compress(h, block, counter, 0);
                fill = 0;
            }
            Py_ssize_t take = 128 - fill < n ? 128 - fill : n;
            memcpy(block + fill, src, take);
            fill += take;
            src += take;
            n -= take;
        }
    }
    counter += fill;
    memset(block + fill, 0, 128 - fill);
    b2_compress(h, block, counter, 1);
    for (int i = 0; i < 16; i++) {
        uint8_t byte = (uint8_t)(h[i / 8] >> (8 * (i % 8)));
        out[2 * i] = HEX[byte >> 4];
        out[2 * i + 1] = HEX[byte & 15];
    }
}

/* ---- RFC 3339 timestamps (parser/timestamps.py TimestampParser.parse) ---- */

static int dig(const char *s, Py_ssize_t i) { return s[i] >= '0' && s[i] <= '9'; }
static int num2(const char *s, Py_ssize_t i) { return (s[i] - '0') * 10 + (s[i + 1] - '0'); }

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static const int DAYS_IN_MONTH[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* 1 and *out = Unix nanoseconds when ts is a timestamp the Python parser accepts, else 0. */
static int parse_ts(const char *ts, Py_ssize_t n, __int128 *out) {
    if (n < 20 || !(ts[10] == 'T' || ts[10] == 't' || ts[10] == ' ') || ts[4] != '-' || ts[7] != '-'
        || ts[13] != ':' || ts[16] != ':')
        return 0;
    static const int DIGITS[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    for (size_t i = 0; i < sizeof DIGITS / sizeof DIGITS[0]; i++)
        if (!dig(ts, DIGITS[i])) return 0;
    int y = num2(ts, 0) * 100 + num2(ts, 2), mo = num2(ts, 5), d = num2(ts, 8);
    int h = num2(ts, 11), mi = num2(ts, 14), s = num2(ts, 17);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > DAYS_IN_MONTH[mo]) return 0;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return 0;
    if (h > 23 || mi > 59 || s > 60) return 0;
    int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    const char *rest = ts + 19;
    Py_ssize_t rn = n - 19, i = 0;
    int64_t nanos = 0;
    if (rest[0] == '.') {
        i = 1;
        while (i < rn && dig(rest, i)) i++;
        Py_ssize_t digits = i - 1;
        if (digits == 0 || digits > 9) return 0;
        for (Py_ssize_t k = 1; k < i; k++) nanos = nanos * 10 + (rest[k] - '0');
        for (Py_ssize_t k = digits; k < 9; k++) nanos *= 10;
    }
    rest += i;
    rn -= i;
    int64_t offset;
    if (rn == 1 && (rest[0] == 'Z' || rest[0] == 'z'))
        offset = 0;
    else if (rn == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' && dig(rest, 1) && dig(rest, 2)
             && dig(rest, 4) && dig(rest, 5))
        offset = (num2(rest, 1) * 3600 + num2(rest, 4) * 60) * (rest[0] == '+' ? 1 : -1);
    else
        return 0;
    *out = (__int128)(seconds - offset) * 1000000000 + nanos;
    return 1;
}

static PyObject *int128_to_py(__int128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong((long long)v);
    char buf[48], *p = buf + sizeof buf - 1;
    int neg = v < 0;
    unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
    *p = 0;
    do {
        *--p = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (neg) *--p = '-';
    return PyLong_FromString(p, NULL, 10);
}

/* ---- framing ---- */

static PyObject *STDOUT, *STDERR;

/* A 3-tuple that takes over the three references (released on failure). */
static PyObject *tuple3(PyObject *a, PyObject *b, PyObject *c) {
    PyObject *t = PyTuple_New(3);
    if (!t) {
        Py_DECREF(a);
        Py_DECREF(b);
        Py_DECREF(c);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    PyTuple_SET_ITEM(t, 2, c);
    return t;
}

/* (time, stream, text) of a complete well-formed line, Py_None when the Python parser must see it,
 * NULL on an error other than invalid UTF-8. */
static PyObject *frame_cri(const char *s, Py_ssize_t n) {
    const char *sp1 = memchr(s, ' ', n);
    if (!sp1) Py_RETURN_NONE;
    const char *stream_at = sp1 + 1;
    const char *sp2 = memchr(stream_at, ' ', s + n - stream_at);
    if (!sp2) Py_RETURN_NONE;
    PyObject *stream;
    if (sp2 - stream_at == 6 && memcmp(stream_at, "stdout", 6) == 0)
        stream = STDOUT;
    else if (sp2 - stream_at == 6 && memcmp(stream_at, "stderr", 6) == 0)
        stream = STDERR;
    else
        Py_RETURN_NONE;
    /* parts[2]: a tag ("F", "P", with ":options") or, before kubelet 1.10, the message's first word */
    const char *field = sp2 + 1, *end = s + n;
    const char *sp3 = memchr(field, ' ', end - field);
    const char *field_end = sp3 ? sp3 : end;
    const char *msg;
    if (field < end && (field[0] == 'F' || field[0] == 'P')
        && (field_end - field == 1 || field[1] == ':')) {
        if (field[0] == 'P') Py_RETURN_NONE;        /* a piece: the partial merger's */
        msg = sp3 ? sp3 + 1 : end;
    } else
        msg = field;                                /* no tag: the rest is the message */
    __int128 t;
    if (!parse_ts(s, sp1 - s, &t)) Py_RETURN_NONE;
    PyObject *text = PyUnicode_DecodeUTF8(msg, s + n - msg, "strict");
    if (!text) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *time = int128_to_py(t);
    if (!time) {
        Py_DECREF(text);
        return NULL;
    }
    Py_INCREF(stream);
    return tuple3(time, stream, text);
}

/* plain.py: the line without one trailing "\r", from stdout, no time. */
static PyObject *frame_plain(const char *s, Py_ssize_t n) {
    if (n > 0 && s[n - 1] == '\r') n--;
    PyObject *text = PyUnicode_DecodeUTF8(s, n, "strict");
    if (!text) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_INCREF(Py_None);
    Py_INCREF(STDOUT);
    return tuple3(Py_None, STDOUT, text);
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* docker.py, for the exact shape docker's json-file driver writes and nothing else:
 * {"log":"<JSON string>","stream":"stdout|stderr","time":"<timestamp>"} (no attrs, no spaces). The
 * log is unescaped as orjson does (a lone surrogate or any other error: the Python parser's); a log
 * without its trailing newline that is 16 KiB or more is a piece (parser/docker.py _piece). */
static PyObject *frame_docker(const char *s, Py_ssize_t n) {
    static const char HEAD[] = "{\"log\":\"", STREAM[] = "\",\"stream\":\"", TIME[] = "\",\"time\":\"";
    const char *p = s + LIT(HEAD), *end = s + n;
    if (n < (Py_ssize_t)LIT(HEAD) || memcmp(s, HEAD, LIT(HEAD)) != 0) Py_RETURN_NONE;
    char *buf = PyMem_Malloc(n ? n : 1), *o = buf;
    if (!buf) return PyErr_NoMemory();
    PyObject *result = NULL;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) goto decline;
        if (c != '\\') {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (end - p < 2) goto decline;
        switch (p[1]) {
            case '"': *o++ = '"'; p += 2; continue;
            case '\\': *o++ = '\\'; p += 2; continue;
            case '/': *o++ = '/'; p += 2; continue;
            case 'b': *o++ = '\b'; p += 2; continue;
            case 'f': *o++ = '\f'; p += 2; continue;
            case 'n': *o++ = '\n'; p += 2; continue;
            case 'r': *o++ = '\r'; p += 2; continue;
            case 't': *o++ = '\t'; p += 2; continue;
            case 'u': break;
            default: goto decline;
        }
        unsigned cp, low;
        if (end - p < 6 || !hex4(p + 2, &cp)) goto decline;
        p += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) goto decline;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &low) || low < 0xDC00 || low > 0xDFFF)
                goto decline;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if (cp < 0x80)
            *o++ = (char)cp;
        else if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xF0 | (cp >> 18));
            *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (end - p < (Py_ssize_t)(LIT(STREAM) + 6 + LIT(TIME)) || memcmp(p, STREAM, LIT(STREAM)) != 0) goto decline;
    p += LIT(STREAM);
    PyObject *stream;
    if (memcmp(p, "stdout", 6) == 0) stream = STDOUT;
    else if (memcmp(p, "stderr", 6) == 0) stream = STDERR;
    else goto decline;
    p += 6;
    if (memcmp(p, TIME, LIT(TIME)) != 0) goto decline;
    p += LIT(TIME);
    const char *ts = p;
    while (p < end && *p != '"' && *p != '\\') p++;
    if (end - p != 2 || p[0] != '"' || p[1] != '}') goto decline;
    __int128 t;
    if (!parse_ts(ts, p - ts, &t)) goto decline;
    Py_ssize_t len = o - buf;
    if (len > 0 && buf[len - 1] == '\n')
        len--;                               /* a whole line */
    else if (len >= 16 * 1024)
        goto decline;                        /* a piece of a longer line */
    PyObject *text = PyUnicode_DecodeUTF8(buf, len, "strict");
    if (!text) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) goto done;
        PyErr_Clear();
        goto decline;
    }
    PyObject *time = int128_to_py(t);
    if (!time) {
        Py_DECREF(text);
        goto done;
    }
    Py_INCREF(stream);
    result = tuple3(time, stream, text);
    goto done;
decline:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_Free(buf);
    return result;
}

static PyObject *py_frame(PyObject *Py_UNUSED(self), PyObject *args) {
    int kind;
    PyObject *lines;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "iO!n", &kind, &PyList_Type, &lines, &limit)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(lines);
    PyObject *out = PyList_New(count);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(line)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "frame: lines must be bytes");
            return NULL;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(line);
        PyObject *item;
        if (n > limit) {
            Py_INCREF(Py_None);
            item = Py_None;          /* cut to its head, flagged: the Python path */
        } else {
            const char *s = PyBytes_AS_STRING(line);
            item = kind == 1 ? frame_cri(s, n) : kind == 2 ? frame_docker(s, n) : frame_plain(s, n);
            if (!item) {
                Py_DECREF(out);
                return NULL;
            }
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

/* ---- the envelope (logtide/envelope.py EventTemplate.record) ---- */

/* orjson's escaping of a str: '"', '\\', and every control character below 0x20 (\b \t \n \f \r
 * short, the others \u00XX in lowercase hex); everything else, DEL and U+2028 included, as is. */
static const char ESCAPE_SHORT[32] = {0, 0, 0, 0, 0, 0, 0, 0, 'b', 't', 'n', 0, 'f', 'r', 0, 0,
                                      0, 0, 0, 0, 0, 0, 0, 0, 0,   0,   0,   0, 0,   0,   0, 0};

static Py_ssize_t json_len(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t out = n + 2;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x20)
            out += ESCAPE_SHORT[c] ? 1 : 5;
        else if (c == '"' || c == '\\')
            out += 1;
    }
    return out;
}

static char *json_write(char *p, const unsigned char *s, Py_ssize_t n) {
    static const char HEX[] = "0123456789abcdef";
    *p++ = '"';
    Py_ssize_t run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        memcpy(p, s + run, i - run);
        p += i - run;
        run = i + 1;
        *p++ = '\\';
        if (c == '"' || c == '\\')
            *p++ = (char)c;
        else if (ESCAPE_SHORT[c])
            *p++ = ESCAPE_SHORT[c];
        else {
            memcpy(p, "u00", 3);
            p[3] = HEX[c >> 4];
            p[4] = HEX[c & 15];
            p += 5;
        }
    }
    memcpy(p, s + run, n - run);
    p += n - run;
    *p++ = '"';
    return p;
}

/* An int or None as JSON into buf (at least 48 bytes); its length, or -1 with an exception set. */
static Py_ssize_t int_or_null(PyObject *v, char *buf) {
    if (v == Py_None) {
        memcpy(buf, "null", 4);
        return 4;
    }
    if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "record: times must be int or None");
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) {   /* beyond int64 nanoseconds (year 2262 and later, before 1677): Python's digits */
        PyObject *str = PyObject_Str(v);
        if (!str) return -1;
        Py_ssize_t len;
        const char *d = PyUnicode_AsUTF8AndSize(str, &len);
        if (!d || len > 47) {
            Py_DECREF(str);
            if (d) PyErr_SetString(PyExc_OverflowError, "record: time out of range");
            return -1;
        }
        memcpy(buf, d, len);
        Py_DECREF(str);
        return len;
    }
    if (x == -1 && PyErr_Occurred()) return -1;
    return snprintf(buf, 48, "%lld", x);
}

static PyObject *py_record(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer prefix, tail;
    long long offset;
    PyObject *time, *observed, *ingest, *body;
    if (!PyArg_ParseTuple(args, "y*LOOOUy*", &prefix, &offset, &time, &observed, &ingest, &body, &tail))
        return NULL;
    PyObject *result = NULL, *id = NULL, *value = NULL;
    char idhex[32], digits[24], tbuf[48], obuf[48], ibuf[48];
    int dn = snprintf(digits, sizeof digits, "%lld", offset);
    Py_ssize_t tn, on, in, bn;
    const unsigned char *b;
    if (observed == Py_None) {
        PyErr_SetString(PyExc_TypeError, "record: observed must be an int");
        goto done;
    }
    if ((tn = int_or_null(time, tbuf)) < 0 || (on = int_or_null(observed, obuf)) < 0
        || (in = int_or_null(ingest, ibuf)) < 0)
        goto done;
    b = (const unsigned char *)PyUnicode_AsUTF8AndSize(body, &bn);
    if (!b) {   /* lone surrogates: orjson refuses them with TypeError too */
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "str is not valid UTF-8: surrogates not allowed");
        goto done;
    }
    b2_hex(prefix.buf, prefix.len, (const uint8_t *)digits, dn, idhex);
    id = PyUnicode_FromStringAndSize(idhex, 32);
    if (!id) goto done;
    static const char F1[] = "{\"id\":\"", F2[] = "\",\"time\":", F3[] = ",\"observed_time\":",
                      F4[] = ",\"ingest_time\":", F5[] = ",\"severity_text\":\"\",\"severity_number\":0,\"body\":";
    Py_ssize_t size = LIT(F1) + 32 + LIT(F2) + tn + LIT(F3) + on + LIT(F4) + in + LIT(F5) + json_len(b, bn)
                      + tail.len;
    value = PyBytes_FromStringAndSize(NULL, size);
    if (!value) goto done;
    char *p = PyBytes_AS_STRING(value);
#define PUT(src, len) (memcpy(p, (src), (len)), p += (len))
    PUT(F1, LIT(F1));
    PUT(idhex, 32);
    PUT(F2, LIT(F2));
    PUT(tbuf, tn);
    PUT(F3, LIT(F3));
    PUT(obuf, on);
    PUT(F4, LIT(F4));
    PUT(ibuf, in);
    PUT(F5, LIT(F5));
    p = json_write(p, b, bn);
    PUT(tail.buf, tail.len);
    result = PyTuple_Pack(2, id, value);
done:
    Py_XDECREF(id);
    Py_XDECREF(value);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&tail);
    return result;
}

static PyObject *py_event_id(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer prefix;
    long long offset;
    if (!PyArg_ParseTuple(args, "y*L", &prefix, &offset)) return NULL;
    char idhex[32], digits[24];
    int dn = snprintf(digits, sizeof digits, "%lld", offset);
    b2_hex(prefix.buf, prefix.len, (const uint8_t *)digits, dn, idhex);
    PyBuffer_Release(&prefix);
    return PyUnicode_FromStringAndSize(idhex, 32);
}

static PyObject *py_parse_ts(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "parse_ts: bytes expected");
        return NULL;
    }
    __int128 t;
    if (!parse_ts(PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &t)) Py_RETURN_NONE;
    return int128_to_py(t);
}

static PyMethodDef METHODS[] = {
    {"frame", py_frame, METH_VARARGS,
     "frame(kind, lines, limit): (time, stream, text) or None per line; kind 0 plain, 1 CRI, 2 docker"},
    {"record", py_record, METH_VARARGS,
     "record(prefix, offset, time, observed, ingest, body, tail) -> (id, envelope JSON)"},
    {"event_id", py_event_id, METH_VARARGS, "event_id(prefix, offset): BLAKE2b-128 hex of prefix + offset"},
    {"parse_ts", py_parse_ts, METH_O, "parse_ts(bytes): RFC 3339 to Unix nanoseconds, or None"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_lines",
                                    "The node agent's native line path (see agents/line_path.py).", -1,
                                    METHODS};

PyMODINIT_FUNC PyInit__lines(void) {
    STDOUT = PyUnicode_InternFromString("stdout");
    STDERR = PyUnicode_InternFromString("stderr");
    if (!STDOUT || !STDERR) return NULL;
    return PyModule_Create(&MODULE);
}
