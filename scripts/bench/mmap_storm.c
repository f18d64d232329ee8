/* mmap/munmap storm: N pairs of 64 KiB anonymous mmap + munmap, the mapping untouched, touched
 * (every page written), or written once (one byte); or of a file mapping (FILE: this program's
 * own executable, mapped PROT_READ|PROT_EXEC like a loader maps code).
 *   Usage: mmap_storm touch|write1|untouched|file N [THREADS]
 * With THREADS (default 1), each thread does N pairs, all released together.
 * Prints "RESULT <ns per pair>" (the storm's wall time / N) and "WALL <ns>" (the storm's wall
 * time: from releasing the threads to the last one done). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static int touch, write1, file, fd = -1;
static long n;
static pthread_barrier_t go;

static void *storm(void *arg) {
    size_t len = file ? 4096 : 64 << 10;
    if (arg) pthread_barrier_wait(&go);
    for (long i = 0; i < n; i++) {
        char *p = file ? mmap(NULL, len, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0)
                       : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) exit(1);
        if (touch)
            for (size_t o = 0; o < len; o += 4096) p[o] = (char)i;
        else if (write1)
            p[0] = (char)i;
        if (munmap(p, len)) exit(1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    touch = argc > 1 && strcmp(argv[1], "touch") == 0;
    write1 = argc > 1 && strcmp(argv[1], "write1") == 0;
    file = argc > 1 && strcmp(argv[1], "file") == 0;
    n = argc > 2 ? atol(argv[2]) : 100000;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (file) fd = open("/proc/self/exe", O_RDONLY);
    unsigned long long t0, t1;
    if (threads <= 1) {
        t0 = now();
        storm(NULL);
        t1 = now();
    } else {
        pthread_t *t = calloc(threads, sizeof *t);
        pthread_barrier_init(&go, NULL, threads + 1);
        for (int i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, storm, &go)) return 1;
        t0 = now();
        pthread_barrier_wait(&go);
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        t1 = now();
    }
    printf("RESULT %.1f\nWALL %llu\n", (double)(t1 - t0) / n, t1 - t0);
    return 0;
}
