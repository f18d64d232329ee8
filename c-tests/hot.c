/* libhot_<NAME>.so: one function that burns CPU, named after the build (-DNAME=x), so a profile
 * can tell which library a sample landed in. */
#ifndef NAME
#define NAME plain
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
__attribute__((noinline)) unsigned long CAT(hot_spin_, NAME)(unsigned long n) {
    volatile unsigned long x = 1;
    for (unsigned long i = 0; i < n; i++) x = x * 6364136223846793005ul + i;
    return x;
}
unsigned long hot_run(double seconds);
#include <time.h>
unsigned long hot_run(double seconds) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long s = 0;
    do {
        s += CAT(hot_spin_, NAME)(1000000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    return s;
}
