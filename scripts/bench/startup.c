/* Start-up cost: runs argv[2..] N=argv[1] times (posix_spawn + wait) and prints the median
 * wall time per run in ns. BENCH_CHILD_PRELOAD, if set, becomes the children's LD_PRELOAD, so
 * this driver itself is never observed. The children's stdout and stderr go to /dev/null
 * (the driver's stdout carries only its RESULT line). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static unsigned long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char **env = environ;
    const char *pre = getenv("BENCH_CHILD_PRELOAD");
    if (pre && *pre) {
        int c = 0;
        while (environ[c]) c++;
        env = calloc(c + 2, sizeof *env);
        memcpy(env, environ, c * sizeof *env);
        char *v = malloc(strlen(pre) + 12);
        sprintf(v, "LD_PRELOAD=%s", pre);
        env[c] = v;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    unsigned long long *t = calloc(n, sizeof *t);
    for (int i = 0; i < n; i++) {
        unsigned long long t0 = now();
        pid_t pid;
        if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, env)) return 1;
        int st;
        waitpid(pid, &st, 0);
        t[i] = now() - t0;
        if (!WIFEXITED(st) || WEXITSTATUS(st)) return 1;
    }
    qsort(t, n, sizeof *t, cmp);
    printf("RESULT %llu\n", t[n / 2]);
    return 0;
}
