/* mmap/munmap storm: N pairs of 64 KiB anonymous mmap + (optionally) touch every page + munmap,
 * or of a file mapping (FILE: this program's own executable, mapped PROT_READ|PROT_EXEC like
 * a loader maps code). Prints nanoseconds per pair. Usage: mmap_storm touch|untouched|file N */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>

static unsigned long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + t.tv_nsec;
}

int main(int argc, char **argv) {
    int touch = argc > 1 && strcmp(argv[1], "touch") == 0;
    long n = argc > 2 ? atol(argv[2]) : 100000;
    int file = argc > 1 && strcmp(argv[1], "file") == 0;
    int fd = file ? open("/proc/self/exe", O_RDONLY) : -1;
    size_t len = file ? 4096 : 64 << 10;
    unsigned long long t0 = now();
    for (long i = 0; i < n; i++) {
        char *p = file ? mmap(NULL, len, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0)
                       : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        if (touch)
            for (size_t o = 0; o < len; o += 4096) p[o] = (char)i;
        if (munmap(p, len)) return 1;
    }
    printf("RESULT %.1f\n", (double)(now() - t0) / n);
    return 0;
}
