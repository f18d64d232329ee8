/* 1 GiB of mapped memory, snapshotted by the agent and read raw, in one process:
 *   anon-half:   1 GiB private anonymous, its first 512 MiB written;
 *   anon-sparse: 1 GiB private anonymous, every other page written (the most runs);
 *   file-cow:    1 GiB private mapping of a tmpfs file, half read, an eighth written.
 * For each, prints the median wall time of a raw /proc/self/pagemap read of the range (one
 * 2 MiB pread, 8 bytes a page), of mincore over it, and of mapagent_snapshot() when the agent
 * is preloaded (the whole process: reconcile with the kernel's maps, then every mapping).
 *   snapshot_1g RUNS TMPFILE */
#include <fcntl.h>
#include <mapagent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GIB (1ul << 30)
#define PAGE 4096ul

static uint64_t now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

static void measure(const char *name, char *base, int runs) {
    static uint64_t buf[GIB / PAGE];
    static unsigned char vec[GIB / PAGE];
    uint64_t t[64], m[64], s[64];
    int fd = open("/proc/self/pagemap", O_RDONLY);
    char label[64];
    snprintf(label, sizeof label, "bench-%s", name);
    for (int i = 0; i < runs; i++) {
        uint64_t t0 = now();
        if (pread(fd, buf, sizeof buf, (uintptr_t)base / PAGE * 8) != (ssize_t)sizeof buf) {
            perror("pagemap");
            exit(1);
        }
        t[i] = now() - t0;
        t0 = now();
        mincore(base, GIB, vec);
        m[i] = now() - t0;
        t0 = now();
        mapagent_snapshot_if_loaded(label);
        s[i] = now() - t0;
    }
    close(fd);
    long present = 0;
    for (size_t i = 0; i < GIB / PAGE; i++) present += buf[i] >> 63;
    printf("%s present=%ld pagemap_ns=%llu mincore_ns=%llu snapshot_call_ns=%llu\n", name, present,
           (unsigned long long)median(t, runs), (unsigned long long)median(m, runs),
           (unsigned long long)median(s, runs));
    fflush(stdout);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1 || runs > 64) runs = 7;
    const char *file = argc > 2 ? argv[2] : "/dev/shm/mapagent-bench-1g";

    char *a = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(a, GIB, MADV_NOHUGEPAGE); /* 4 KiB pages: the costly case */
    memset(a, 1, GIB / 2);
    measure("anon-half", a, runs);
    munmap(a, GIB);

    a = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(a, GIB, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < GIB; i += 2 * PAGE) a[i] = 1;
    measure("anon-sparse", a, runs);
    munmap(a, GIB);

    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, GIB) != 0) {
        perror(file);
        return 1;
    }
    char *f = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    volatile char sink = 0;
    for (size_t i = 0; i < GIB / 2; i += PAGE) sink += f[i];
    for (size_t i = 0; i < GIB / 8; i += PAGE) f[i] = 1;
    (void)sink;
    measure("file-cow", f, runs);
    munmap(f, GIB);
    close(fd);
    unlink(file);
    return 0;
}
