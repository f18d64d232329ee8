/* Checkpoints for the integration tests: the CLOCK_MONOTONIC time, then /proc/self/maps as the
 * kernel shows it, appended to $CHECKPOINT_FILE. Raw open/read/write into a static buffer, so
 * taking a checkpoint maps nothing itself. */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char cp_maps[1 << 20];

static void checkpoint(const char *label) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long t = (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && (r = read(fd, cp_maps + n, sizeof cp_maps - n)) > 0) n += (size_t)r;
    if (fd >= 0) close(fd);
    const char *out = getenv("CHECKPOINT_FILE");
    if (!out) return;
    int o = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (o < 0) return;
    char head[256];
    int h = snprintf(head, sizeof head, "== %s %llu %d\n", label, t, (int)getpid());
    if (write(o, head, (size_t)h) < 0 || write(o, cp_maps, n) < 0) _exit(99);
    close(o);
}

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(3);                                                        \
        }                                                                   \
    } while (0)
#endif
