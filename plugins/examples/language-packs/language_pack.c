/* A language pack (careport contract v1, kind "language-pack") in C: the whole catalogue of
 * one locale, from catalog.json, returned as is.
 *
 *   in:  {}            out: {"locale": "es", "name": "Español", "direction": "ltr",
 *                            "plural_categories": ["one", "other"], "plural_rule": "...",
 *                            "messages": {"error.not_found": "...", "nav.patients": "...", ...}}
 *
 * catalog.h holds catalog.json as a C string; plugins/examples/build.sh writes it and compiles
 * this file once per locale: clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -I lang-xx ...
 */

#include "catalog.h" /* static const char CATALOG[]; */

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned char u8;

extern u8 __heap_base;
static u32 heap_top = 0;

__attribute__((export_name("careport_contract"))) int careport_contract(void) { return 1; }

__attribute__((export_name("careport_alloc"))) void *careport_alloc(int len) {
    if (heap_top == 0) heap_top = (u32)&__heap_base;
    u32 p = (heap_top + 7u) & ~7u;
    u32 end = p + (u32)len;
    u32 have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (unsigned long)-1) return 0;
    heap_top = end;
    return (void *)p;
}

static const char UNKNOWN[] = "{\"error\":\"unknown operation\"}";

__attribute__((export_name("careport_call"))) u64 careport_call(const u8 *op, int op_len, const u8 *in, int in_len) {
    (void)in;
    (void)in_len;
    static const char want[] = "language-pack";
    int ok = op_len == (int)sizeof want - 1;
    for (int i = 0; ok && i < op_len; i++) ok = op[i] == (u8)want[i];
    const char *out = ok ? CATALOG : UNKNOWN;
    u32 len = ok ? (u32)sizeof CATALOG - 1 : (u32)sizeof UNKNOWN - 1;
    return ((u64)(u32)out << 32) | len;
}
