/* dlopen/dlclose storm: N pairs on a small library (its path is argv[1]). Prints ns per pair. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 2 ? atol(argv[2]) : 2000;
    unsigned long long t0 = now();
    for (long i = 0; i < n; i++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
        if (dlclose(h)) return 1;
    }
    printf("RESULT %.1f\n", (double)(now() - t0) / n);
    return 0;
}
