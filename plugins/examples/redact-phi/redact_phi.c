/* redact-phi: an ocr-postprocess plugin (careport contract v1) in C.
 *
 * Masks e-mail addresses, phone numbers, medical record numbers and dates of birth in OCR
 * text with '*' (one per byte, so offsets stay valid in both texts) and returns each span:
 *
 *   in:  {"text": "...", "pages": [...], "language": "en"}
 *   out: {"text": "<masked>", "annotations": [{"kind": "email", "start": 10, "end": 27}, ...]}
 *
 * Offsets are byte offsets into the UTF-8 text. Clinical dates are kept: only a date that
 * follows "DOB", "D.O.B.", "date of birth" or "born" is a date of birth.
 *
 * Build: clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *          -o redact_phi.wasm redact_phi.c
 * (plugins/examples/build.sh does this and updates plugin.toml's sha256.)
 */

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned char u8;

/* ---- memory: a bump allocator over the module's linear memory -------------------------- */

extern u8 __heap_base;
static u32 heap_top = 0;

static void *alloc(u32 len) {
    if (heap_top == 0) heap_top = (u32)&__heap_base;
    u32 p = (heap_top + 7u) & ~7u;
    u32 end = p + len;
    u32 have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        u32 pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
    }
    heap_top = end;
    return (void *)p;
}

__attribute__((export_name("careport_contract"))) int careport_contract(void) { return 1; }

__attribute__((export_name("careport_alloc"))) void *careport_alloc(int len) { return alloc((u32)len); }

/* ---- a growable output buffer ---------------------------------------------------------- */

typedef struct { u8 *p; u32 len, cap; } buf;

static void put(buf *b, const u8 *s, u32 n) {
    if (b->len + n > b->cap) {
        u32 cap = (b->cap ? b->cap * 2 : 256);
        while (cap < b->len + n) cap *= 2;
        u8 *np = alloc(cap);
        for (u32 i = 0; i < b->len; i++) np[i] = b->p[i];
        b->p = np;
        b->cap = cap;
    }
    for (u32 i = 0; i < n; i++) b->p[b->len + i] = s[i];
    b->len += n;
}

static void puts_(buf *b, const char *s) {
    u32 n = 0;
    while (s[n]) n++;
    put(b, (const u8 *)s, n);
}

static void put_uint(buf *b, u32 v) {
    u8 d[10];
    int n = 0;
    do { d[n++] = (u8)('0' + v % 10); v /= 10; } while (v);
    while (n) put(b, &d[--n], 1);
}

/* JSON-escape s[0..n) into b. */
static void put_json_string(buf *b, const u8 *s, u32 n) {
    static const char hex[] = "0123456789abcdef";
    put(b, (const u8 *)"\"", 1);
    for (u32 i = 0; i < n; i++) {
        u8 c = s[i];
        if (c == '"' || c == '\\') { u8 e[2] = {'\\', c}; put(b, e, 2); }
        else if (c == '\n') puts_(b, "\\n");
        else if (c == '\r') puts_(b, "\\r");
        else if (c == '\t') puts_(b, "\\t");
        else if (c < 0x20) { u8 e[6] = {'\\', 'u', '0', '0', (u8)hex[c >> 4], (u8)hex[c & 15]}; put(b, e, 6); }
        else put(b, &c, 1);
    }
    put(b, (const u8 *)"\"", 1);
}

/* ---- reading the input: the top-level "text" string ------------------------------------ */

static u32 hexval(u8 c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
}

static void put_utf8(buf *b, u32 cp) {
    u8 o[4];
    if (cp < 0x80) { o[0] = (u8)cp; put(b, o, 1); }
    else if (cp < 0x800) { o[0] = (u8)(0xC0 | (cp >> 6)); o[1] = (u8)(0x80 | (cp & 63)); put(b, o, 2); }
    else if (cp < 0x10000) {
        o[0] = (u8)(0xE0 | (cp >> 12)); o[1] = (u8)(0x80 | ((cp >> 6) & 63)); o[2] = (u8)(0x80 | (cp & 63));
        put(b, o, 3);
    } else {
        o[0] = (u8)(0xF0 | (cp >> 18)); o[1] = (u8)(0x80 | ((cp >> 12) & 63));
        o[2] = (u8)(0x80 | ((cp >> 6) & 63)); o[3] = (u8)(0x80 | (cp & 63));
        put(b, o, 4);
    }
}

/* Decode the JSON string starting at in[*i] == '"' into out; advances *i past it. */
static int read_string(const u8 *in, u32 n, u32 *i, buf *out) {
    u32 k = *i + 1;
    while (k < n && in[k] != '"') {
        if (in[k] == '\\' && k + 1 < n) {
            u8 e = in[k + 1];
            k += 2;
            if (e == 'n') put(out, (const u8 *)"\n", 1);
            else if (e == 't') put(out, (const u8 *)"\t", 1);
            else if (e == 'r') put(out, (const u8 *)"\r", 1);
            else if (e == 'b' || e == 'f') put(out, (const u8 *)" ", 1);
            else if (e == 'u' && k + 4 <= n) {
                u32 cp = (hexval(in[k]) << 12) | (hexval(in[k + 1]) << 8) | (hexval(in[k + 2]) << 4) | hexval(in[k + 3]);
                k += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && k + 6 <= n && in[k] == '\\' && in[k + 1] == 'u') {
                    u32 lo = (hexval(in[k + 2]) << 12) | (hexval(in[k + 3]) << 8) | (hexval(in[k + 4]) << 4) | hexval(in[k + 5]);
                    k += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(out, cp);
            } else put(out, &e, 1);
        } else {
            put(out, &in[k], 1);
            k++;
        }
    }
    if (k >= n) return 0;
    *i = k + 1;
    return 1;
}

/* Find the top-level key "text" and decode its value. */
static int find_text(const u8 *in, u32 n, buf *text) {
    int depth = 0;
    for (u32 i = 0; i < n; i++) {
        u8 c = in[i];
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == '"') {
            buf key = {0, 0, 0};
            u32 j = i;
            if (!read_string(in, n, &j, &key)) return 0;
            u32 k = j;
            while (k < n && (in[k] == ' ' || in[k] == '\n' || in[k] == '\t' || in[k] == '\r')) k++;
            if (depth == 1 && k < n && in[k] == ':' && key.len == 4 && key.p[0] == 't' && key.p[1] == 'e' &&
                key.p[2] == 'x' && key.p[3] == 't') {
                k++;
                while (k < n && (in[k] == ' ' || in[k] == '\n' || in[k] == '\t' || in[k] == '\r')) k++;
                if (k < n && in[k] == '"') return read_string(in, n, &k, text);
                return 0;
            }
            i = j - 1;
        }
    }
    return 0;
}

/* ---- detection ------------------------------------------------------------------------- */

typedef struct { const char *kind; u32 start, end; } span;
static span spans[4096];
static u32 nspans = 0;

static int is_digit(u8 c) { return c >= '0' && c <= '9'; }
static int is_alpha(u8 c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(u8 c) { return is_digit(c) || is_alpha(c); }
static u8 lower(u8 c) { return (c >= 'A' && c <= 'Z') ? (u8)(c + 32) : c; }

static int covered(u32 i) {
    for (u32 s = 0; s < nspans; s++)
        if (i >= spans[s].start && i < spans[s].end) return 1;
    return 0;
}

static void add(const char *kind, u32 start, u32 end) {
    if (end <= start || nspans == sizeof spans / sizeof spans[0]) return;
    for (u32 i = start; i < end; i++)
        if (covered(i)) return;
    spans[nspans].kind = kind;
    spans[nspans].start = start;
    spans[nspans].end = end;
    nspans++;
}

/* Case-insensitive match of word w at t[i], on a word boundary. */
static int word_at(const u8 *t, u32 n, u32 i, const char *w) {
    if (i > 0 && is_alnum(t[i - 1])) return 0;
    u32 k = 0;
    for (; w[k]; k++)
        if (i + k >= n || lower(t[i + k]) != (u8)w[k]) return 0;
    return 1;
}

static u32 wlen(const char *w) { u32 k = 0; while (w[k]) k++; return k; }

static void emails(const u8 *t, u32 n) {
    for (u32 at = 0; at < n; at++) {
        if (t[at] != '@') continue;
        u32 s = at;
        while (s > 0 && (is_alnum(t[s - 1]) || t[s - 1] == '.' || t[s - 1] == '_' || t[s - 1] == '%' ||
                         t[s - 1] == '+' || t[s - 1] == '-'))
            s--;
        u32 e = at + 1, dot = 0;
        while (e < n && (is_alnum(t[e]) || t[e] == '.' || t[e] == '-')) { if (t[e] == '.') dot = e; e++; }
        while (e > at + 1 && t[e - 1] == '.') e--;
        if (s < at && dot > at + 1 && dot + 2 < e) add("email", s, e);
    }
}

/* Whether a month name (at least its first three letters) starts at t[i]; its end in *end. */
static int is_month(const u8 *t, u32 n, u32 i, u32 *end) {
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    u32 k = i;
    while (k < n && is_alpha(t[k])) k++;
    if (k - i < 3 || k - i > 9) return 0;
    for (int m = 0; m < 12; m++)
        if (lower(t[i]) == (u8)months[m * 3] && lower(t[i + 1]) == (u8)months[m * 3 + 1] &&
            lower(t[i + 2]) == (u8)months[m * 3 + 2]) {
            *end = k;
            return 1;
        }
    return 0;
}

/* The end of a date at t[i]: day, month and year as three tokens of digits or a month name,
 * separated by / - . space or comma (12/03/1961, 1961-03-12, 4 July 1958, March 4, 1958); or 0. */
static u32 date_end(const u8 *t, u32 n, u32 i) {
    u32 k = i, tokens = 0, digits = 0, last = 0;
    while (k < n && tokens < 3) {
        if (is_digit(t[k])) {
            while (k < n && is_digit(t[k])) { k++; digits++; }
        } else if (is_alpha(t[k])) {
            u32 e;
            if (!is_month(t, n, k, &e)) break;
            k = e;
        } else break;
        tokens++;
        last = k;
        if (k < n && (t[k] == '/' || t[k] == '-' || t[k] == '.')) { k++; continue; }
        if (k < n && (t[k] == ' ' || t[k] == ',')) {
            k++;
            if (k < n && t[k] == ' ') k++;
            continue;
        }
        break;
    }
    return (tokens == 3 && digits >= 4 && digits <= 8) ? last : 0;
}

static void dates_of_birth(const u8 *t, u32 n) {
    static const char *keys[] = {"date of birth", "d.o.b.", "d.o.b", "dob", "born", 0};
    for (u32 i = 0; i < n; i++) {
        for (int w = 0; keys[w]; w++) {
            if (!word_at(t, n, i, keys[w])) continue;
            u32 k = i + wlen(keys[w]);
            while (k < n && (t[k] == ' ' || t[k] == ':' || t[k] == '\t' || t[k] == '=' ||
                             (t[k] == 'o' && k + 1 < n && t[k + 1] == 'n' && k + 2 < n && t[k + 2] == ' ')))
                k += (t[k] == 'o') ? 2 : 1;
            u32 e = date_end(t, n, k);
            if (e) add("date_of_birth", k, e);
            break;
        }
    }
}

static void record_numbers(const u8 *t, u32 n) {
    static const char *keys[] = {"medical record number", "mrn", "mr#", "patient id", "hospital number", "nhs number", 0};
    for (u32 i = 0; i < n; i++) {
        for (int w = 0; keys[w]; w++) {
            if (!word_at(t, n, i, keys[w])) continue;
            u32 k = i + wlen(keys[w]);
            while (k < n && (t[k] == ' ' || t[k] == ':' || t[k] == '#' || t[k] == '.' || t[k] == '=')) k++;
            u32 e = k, digits = 0;
            while (e < n && (is_alnum(t[e]) || t[e] == '-' || (t[e] == ' ' && e + 1 < n && is_digit(t[e + 1]) && digits))) {
                if (is_digit(t[e])) digits++;
                e++;
            }
            if (digits >= 4 && e - k <= 24) add("mrn", k, e);
            break;
        }
        /* A standalone identifier such as CP0012345678 or H-0012345: letters then 6+ digits. */
        if ((i == 0 || !is_alnum(t[i - 1])) && t[i] >= 'A' && t[i] <= 'Z') {
            u32 k = i;
            while (k < n && k - i < 3 && t[k] >= 'A' && t[k] <= 'Z') k++;
            if (k < n && t[k] == '-') k++;
            u32 d = k;
            while (d < n && is_digit(t[d])) d++;
            if (d - k >= 6 && d - k <= 12 && (d == n || !is_alnum(t[d]))) add("mrn", i, d);
        }
    }
}

static void phones(const u8 *t, u32 n) {
    for (u32 i = 0; i < n; i++) {
        if (!(is_digit(t[i]) || t[i] == '+' || t[i] == '(')) continue;
        if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '/' || t[i - 1] == '.')) continue;
        u32 k = i, digits = 0;
        while (k < n && (is_digit(t[k]) || t[k] == ' ' || t[k] == '-' || t[k] == '(' || t[k] == ')' ||
                         (t[k] == '+' && k == i) || t[k] == '.')) {
            if (is_digit(t[k])) digits++;
            if (k - i > 22) break;
            k++;
        }
        while (k > i && !is_digit(t[k - 1]) && t[k - 1] != ')') k--;
        if (digits >= 9 && digits <= 15 && !covered(i)) {
            add("phone", i, k);
            i = k;
        }
    }
}

/* ---- the entry point ------------------------------------------------------------------- */

static u64 result(buf *b) { return ((u64)(u32)b->p << 32) | b->len; }

__attribute__((export_name("careport_call"))) u64 careport_call(const u8 *op, int op_len, const u8 *in, int in_len) {
    buf out = {0, 0, 0};
    static const char want[] = "ocr-postprocess";
    int ok = op_len == (int)sizeof want - 1;
    for (int i = 0; ok && i < op_len; i++) ok = op[i] == (u8)want[i];
    if (!ok) {
        puts_(&out, "{\"error\":\"unknown operation\"}");
        return result(&out);
    }
    buf text = {0, 0, 0};
    if (!find_text(in, (u32)in_len, &text)) {
        puts_(&out, "{\"error\":\"the input has no text\"}");
        return result(&out);
    }
    nspans = 0;
    emails(text.p, text.len);
    dates_of_birth(text.p, text.len);
    record_numbers(text.p, text.len);
    phones(text.p, text.len);
    /* spans in text order */
    for (u32 a = 1; a < nspans; a++)
        for (u32 b = a; b > 0 && spans[b - 1].start > spans[b].start; b--) {
            span tmp = spans[b]; spans[b] = spans[b - 1]; spans[b - 1] = tmp;
        }
    for (u32 s = 0; s < nspans; s++)
        for (u32 i = spans[s].start; i < spans[s].end; i++) text.p[i] = '*';
    puts_(&out, "{\"text\":");
    put_json_string(&out, text.p, text.len);
    puts_(&out, ",\"annotations\":[");
    for (u32 s = 0; s < nspans; s++) {
        if (s) puts_(&out, ",");
        puts_(&out, "{\"kind\":\"");
        puts_(&out, spans[s].kind);
        puts_(&out, "\",\"start\":");
        put_uint(&out, spans[s].start);
        puts_(&out, ",\"end\":");
        put_uint(&out, spans[s].end);
        puts_(&out, "}");
    }
    puts_(&out, "]}");
    return result(&out);
}
