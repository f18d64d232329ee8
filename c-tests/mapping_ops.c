/* A file mapped and its fd closed, a memfd mapping, mremap growth (anonymous and file), and
 * mprotect splitting a mapping, each followed by a checkpoint. */
#include "checkpoint.h"
#include <sys/mman.h>

int main(int argc, char **argv) {
    const char *file = argv[1];
    long pg = sysconf(_SC_PAGESIZE);
    checkpoint("start");

    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 16 * pg) == 0);
    char *f = mmap(NULL, 4 * pg, PROT_READ, MAP_PRIVATE, fd, 2 * pg);
    CHECK(f != MAP_FAILED);
    close(fd); /* the mapping outlives the descriptor */
    checkpoint("file-mapped-fd-closed");

    int mfd = memfd_create("mapagent-test", 0);
    CHECK(mfd >= 0);
    CHECK(ftruncate(mfd, 8 * pg) == 0);
    char *m = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    CHECK(m != MAP_FAILED);
    m[0] = 1;
    close(mfd);
    checkpoint("memfd-mapped");

    char *a = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(a != MAP_FAILED);
    a[0] = 7;
    char *g = mremap(a, 4 * pg, 64 * pg, MREMAP_MAYMOVE);
    CHECK(g != MAP_FAILED && g[0] == 7);
    checkpoint("mremap-grown");

    char *f2 = mremap(f, 4 * pg, 8 * pg, MREMAP_MAYMOVE);
    CHECK(f2 != MAP_FAILED);
    checkpoint("file-mremap-grown");

    char *s = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED);
    CHECK(mprotect(s + 4 * pg, 2 * pg, PROT_READ) == 0);
    CHECK(mprotect(s + 10 * pg, pg, PROT_NONE) == 0);
    checkpoint("mprotect-split");

    CHECK(munmap(s + 12 * pg, 2 * pg) == 0);
    CHECK(munmap(m, 8 * pg) == 0);
    checkpoint("unmapped");
    return 0;
}
