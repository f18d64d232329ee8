/* Memory use in steps: four times, map and touch 16 MiB more, take a labelled snapshot
 * ("step-N"; the agent samples memory use with it) and print /proc/self/statm read right
 * after, then sleep 60 ms (interval samples land between steps). Prints one line per step:
 *   step-N size resident shared text lib data dt */
#include <mapagent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define STEP (16 << 20)

int main(void) {
    char line[256];
    /* The heap exists before step 1: otherwise fopen's first malloc maps it between the
     * snapshot and the statm read (the agent allocates nothing in here to make it earlier). */
    static void *volatile warm;
    warm = malloc(1); /* kept: freeing it would trim the heap straight back */
    for (int i = 1; i <= 4; i++) {
        char *p = mmap(NULL, STEP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        madvise(p, STEP, MADV_NOHUGEPAGE);
        memset(p, i, STEP);
        char label[16];
        snprintf(label, sizeof label, "step-%d", i);
        mapagent_snapshot_if_loaded(label);
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || !fgets(line, sizeof line, f)) return 1;
        fclose(f);
        printf("%s %s", label, line);
        fflush(stdout);
        struct timespec ts = {0, 60 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}
