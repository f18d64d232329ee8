/* The storm: N pairs (default 100000) of a 64 KiB anonymous mmap, a one-byte write
 * and munmap, on one thread. Prints pairs=N. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        p[0] = 1;
        if (munmap(p, 65536)) return 1;
    }
    printf("pairs=%ld\n", n);
    return 0;
}
