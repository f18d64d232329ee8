/* The reproduction from "Hunting Down Dirty Memory Pages", as a -fPIC shared library:
 *   ro: 1000 pages of const data with no pointer: .rodata, stays clean and shared;
 *   rw: a const struct whose first field points to strlen, followed by 1000 pages: the
 *       pointer needs a relocation at load, so the struct goes to .data.rel.ro and the page
 *       holding the pointer is copied on write; the other 1000 stay clean;
 *   p:  a const pointer to a string: .data.rel.ro too, dirtied by its relocation.
 * With -DFIXED: the same data without pointers (the blog's fix), for `mapagent diff`. */
#include <string.h>

#define PAGE_SIZE 4096
#define ALLOC_SIZE (PAGE_SIZE * 1000)

#ifndef FIXED
typedef struct {
    const void *invalidater;
    const char data[ALLOC_SIZE];
} Invalid;

static const char ro[ALLOC_SIZE];
static const Invalid rw = {(const void *)strlen, {0}};
static const char *const p = "test";
#else
/* The patch: an index instead of a pointer, an array instead of a pointer to a string. Both
 * move to .rodata and nothing needs relocating. */
typedef struct {
    unsigned long invalidater;
    const char data[ALLOC_SIZE];
} Invalid;

static const char ro[ALLOC_SIZE];
static const Invalid rw = {1, {0}};
static const char p[] = "test";
#endif

/* So none of them is optimised out. */
const void *dirty_lib_addresses(int which) {
    switch (which) {
    case 0: return ro;
    case 1: return &rw;
    default: return &p;
    }
}
