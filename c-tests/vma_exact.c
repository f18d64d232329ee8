/* The fidelity test subject: each step is something a model of the address space must split or
 * merge exactly as the kernel does (holes, alternating protections, MAP_FIXED over a mapping,
 * mremap in its forms, shared file mappings split by mprotect, malloc, thread stacks, a
 * NODELETE library, a raw syscall mmap), each followed by a checkpoint. */
#include "checkpoint.h"
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static int gate[2]; /* threads block on its read end until main has taken its checkpoint */

static void *waiter(void *arg) {
    (void)arg;
    char c;
    CHECK(read(gate[0], &c, 1) == 1);
    return NULL;
}

static void *anon(size_t len, int prot) {
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

int main(void) {
    long pg = sysconf(_SC_PAGESIZE);
    CHECK(pg > 0);

    /* Like a JIT: a hole, then one VMA per page as protections alternate. */
    char *j = anon(64 * pg, PROT_READ | PROT_WRITE);
    for (int i = 0; i < 64; i++) j[i * pg] = (char)i;
    CHECK(munmap(j + 30 * pg, 4 * pg) == 0);
    for (int i = 0; i < 64; i += 2) {
        if (i >= 30 && i < 34) continue; /* the hole */
        CHECK(mprotect(j + i * pg, pg, PROT_READ | PROT_EXEC) == 0);
    }
    checkpoint("jit");

    /* A file mapping replaces two pages in the middle of an anonymous one. */
    char *fo = anon(16 * pg, PROT_READ | PROT_WRITE);
    for (int i = 0; i < 16; i++) fo[i * pg] = 1;
    int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    CHECK(exe >= 0);
    char *over = mmap(fo + 4 * pg, 2 * pg, PROT_READ, MAP_FIXED | MAP_PRIVATE, exe, 0);
    CHECK(over == fo + 4 * pg);
    CHECK(memcmp(over, "\177ELF", 4) == 0);
    CHECK(close(exe) == 0);
    checkpoint("fixed-over");

    /* Must change nothing: the range is taken. */
    void *nr = mmap(fo, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(nr == MAP_FAILED && errno == EEXIST);
    checkpoint("noreplace");

    char *sh = anon(16 * pg, PROT_READ | PROT_WRITE);
    sh[0] = 5;
    char *sh2 = mremap(sh, 16 * pg, 8 * pg, 0);
    CHECK(sh2 == sh && sh2[0] == 5);
    checkpoint("mremap-shrink");

    /* The moved mapping lands inside a reservation, splitting it in three. */
    char *res = anon(16 * pg, PROT_NONE);
    char *mv = anon(8 * pg, PROT_READ | PROT_WRITE);
    mv[0] = 6;
    char *mv2 = mremap(mv, 8 * pg, 8 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, res + 4 * pg);
    CHECK(mv2 == res + 4 * pg && mv2[0] == 6);
    checkpoint("mremap-fixed");

    /* The old range stays mapped (empty) and a new one appears. */
    char *du = anon(4 * pg, PROT_READ | PROT_WRITE);
    du[0] = 8;
    char *du2 = mremap(du, 4 * pg, 4 * pg, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    CHECK(du2 != MAP_FAILED && du2 != du && du2[0] == 8);
    checkpoint("mremap-dontunmap");

    /* A shared file mapping at a nonzero offset, split by mprotect. */
    char path[] = "/tmp/vma_exact.XXXXXX";
    int sfd = mkstemp(path);
    CHECK(sfd >= 0);
    CHECK(ftruncate(sfd, 8 * pg) == 0);
    char *sf = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 2 * pg);
    CHECK(sf != MAP_FAILED);
    for (int i = 0; i < 4; i++) sf[i * pg] = 'x';
    CHECK(close(sfd) == 0);
    CHECK(mprotect(sf + 2 * pg, 2 * pg, PROT_NONE) == 0);
    checkpoint("shared-file");

    /* Small ones grow the heap; the big one gets its own mmap. Kept allocated. */
    static char *small[2000];
    for (int i = 0; i < 2000; i++) {
        size_t n = 100 + (size_t)(i * 37) % 401;
        small[i] = malloc(n);
        CHECK(small[i] != NULL);
        memset(small[i], i & 0xff, n);
    }
    char *big = malloc(8 << 20);
    CHECK(big != NULL);
    big[0] = 1;
    checkpoint("malloc");

    /* Three stacks (with guard pages) present at the checkpoint, gone after the join. */
    CHECK(pipe(gate) == 0);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, waiter, NULL) == 0);
    checkpoint("threads");
    CHECK(write(gate[1], "abc", 3) == 3);
    for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
    checkpoint("threads-joined");

    void *z = dlopen("libz.so.1", RTLD_NOW | RTLD_NODELETE);
    CHECK(z != NULL);
    checkpoint("nodelete-open");
    CHECK(dlclose(z) == 0); /* NODELETE: its mappings must stay */
    checkpoint("nodelete-closed");

    /* Bypasses the libc wrapper, so only the kernel's view shows it. */
    long raw = syscall(SYS_mmap, NULL, 4 * pg, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(raw != -1);
    ((char *)raw)[0] = 9;
    checkpoint("raw-mmap");

    CHECK(unlink(path) == 0); /* the mapping stays */
    checkpoint("end");
    return 0;
}
