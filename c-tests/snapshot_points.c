/* Snapshot triggers: from code through mapagent.h, on a signal, on an interval.
 *   snapshot_points api:      snapshot "before", write 4 pages of snap_table, snapshot
 *                             "after-4", write 8 more, snapshot "after-12"; prints each
 *                             mapagent_snapshot_if_loaded() result. With SMAPS_DIR set,
 *                             copies /proc/self/smaps to SMAPS_DIR/LABEL right after each
 *                             snapshot returns (nothing is written in between).
 *   snapshot_points signal:   raise(SIGUSR2) (MAPAGENT_SNAPSHOT_SIGNAL=SIGUSR2), then wait.
 *   snapshot_points sleep MS: just sleep (MAPAGENT_INTERVAL_MS takes the snapshots). */
#include <fcntl.h>
#include <mapagent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void snap_touch(int pages);

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int snap(const char *label) {
    int r = mapagent_snapshot_if_loaded(label);
    const char *dir = getenv("SMAPS_DIR");
    if (dir) {
        char path[4096], buf[65536];
        snprintf(path, sizeof path, "%s/%s", dir, label);
        int in = open("/proc/self/smaps", O_RDONLY);
        int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ssize_t n;
        while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, n) != n) break;
        close(in);
        close(out);
    }
    return r;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "api";
    if (!strcmp(mode, "api")) {
        int a = snap("before");
        snap_touch(4);
        int b = snap("after-4");
        snap_touch(12);
        int c = snap("after-12");
        printf("%d %d %d\n", a, b, c);
    } else if (!strcmp(mode, "signal")) {
        snap_touch(2);
        raise(SIGUSR2);
        sleep_ms(300); /* the writer takes it asynchronously */
        printf("signalled\n");
    } else {
        sleep_ms(argc > 2 ? atol(argv[2]) : 200);
    }
    return 0;
}
