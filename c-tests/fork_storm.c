/* Forks N children while two threads mmap/munmap and a third dlopen/dlclose libz in a loop:
 * a child can be born with the loader's lock or an allocator's lock held by a thread that
 * does not exist in it. Each child maps something and exits. Prints the wall time of the
 * forks ("WALL ns") and how many children exited 0. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop;

static void *mapper(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            p[0] = 1;
            munmap(p, 65536);
        }
    }
    return NULL;
}

static void *loader(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        void *h = dlopen("libz.so.1", RTLD_NOW);
        if (h) dlclose(h);
    }
    return NULL;
}

static unsigned long long now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    pthread_t t[3];
    pthread_create(&t[0], NULL, mapper, NULL);
    pthread_create(&t[1], NULL, mapper, NULL);
    pthread_create(&t[2], NULL, loader, NULL);
    usleep(20000);
    int ok = 0;
    unsigned long long t0 = now();
    for (int i = 0; i < n; i++) {
        pid_t c = fork();
        if (c == 0) {
            void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            /* Only async-signal-safe calls after fork in a threaded program: exit() would run
             * _dl_fini, which takes the loader lock the dlopen thread may have held. */
            _exit(p == MAP_FAILED ? 1 : 0);
        }
        int st;
        if (c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    }
    unsigned long long t1 = now();
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("WALL %llu\nchildren ok %d of %d\n", t1 - t0, ok, n);
    return ok == n ? 0 : 1;
}
