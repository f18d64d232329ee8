/* Loads libdirty_lib.so (linked), touches nothing of it but reads one byte of each variable so
 * their first pages are present, then exits: the exit snapshot shows what load-time
 * relocations alone dirtied.  dirty_main [smaps-out]: with an argument, writes
 * /proc/self/smaps to that file from an atexit handler (the agent's exit snapshot runs later:
 * its handler was registered first). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const void *dirty_lib_addresses(int which);

static const char *smaps_out;

static void dump_smaps(void) {
    int in = open("/proc/self/smaps", O_RDONLY);
    int out = open(smaps_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[65536];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) break;
    close(in);
    close(out);
}

int main(int argc, char **argv) {
    volatile char sink = 0;
    for (int i = 0; i < 3; i++) sink += *(const char *)dirty_lib_addresses(i);
    (void)sink;
    if (argc > 1) {
        smaps_out = argv[1];
        atexit(dump_smaps);
    }
    return 0;
}
