/* 8 threads doing mmap/munmap at once; each leaves a few mappings behind. */
#include "checkpoint.h"
#include <pthread.h>
#include <sys/mman.h>

#define THREADS 8
#define ROUNDS 2000

static void *worker(void *arg) {
    long id = (long)arg;
    long pg = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < ROUNDS; i++) {
        size_t len = (size_t)(1 + (i + id) % 16) * pg;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        p[0] = (char)i;
        if (i % 500 == 7) {
            CHECK(mprotect(p, pg, PROT_READ) == 0); /* kept, with a distinct protection */
            continue;
        }
        CHECK(munmap(p, len) == 0);
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    checkpoint("start");
    for (long i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    checkpoint("joined");
    return 0;
}
