/* A library's lookup table: 2048 entries, 12 pages. As written it holds no pointer, so it
 * lives in .rodata and every process shares the page-cache copy.
 *
 * Build with -DWITH_POINTER to see the mistake the gate catches: a `const char *` field makes
 * every entry need a relocation at load (-fPIC), the table moves to .data.rel.ro, and its
 * pages are copied on write in every process that loads the library. */
#include <stddef.h>

struct op {
    int code;
    int flags;
#ifdef WITH_POINTER
    const char *name;
    char pad[8];
#else
    char name[16];
#endif
};

#define E(n) {n, n * 3, "op"}
#define E8(n) E(n), E(n + 1), E(n + 2), E(n + 3), E(n + 4), E(n + 5), E(n + 6), E(n + 7)
#define E64(n) E8(n), E8(n + 8), E8(n + 16), E8(n + 24), E8(n + 32), E8(n + 40), E8(n + 48), E8(n + 56)
#define E512(n) E64(n), E64(n + 64), E64(n + 128), E64(n + 192), E64(n + 256), E64(n + 320), E64(n + 384), E64(n + 448)

static const struct op ops[2048] = {E512(0), E512(512), E512(1024), E512(1536)};

int op_flags(int code) {
    return code >= 0 && code < 2048 ? ops[code].flags : -1;
}
