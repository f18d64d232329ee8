/* Watched globals (MAPAGENT_WATCH="current_query:str,counter:i64,label:chars,plug_w_data:i32,
 * no_such_symbol:u64"): changes them step by step and asks for a sample after each step with
 * mapagent_watch_sample(); built with -rdynamic so that its globals are in the dynamic symbol
 * table (as PostgreSQL's are).  watch_points PLUGIN */
#include <dlfcn.h>
#include <mapagent.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

const char *current_query = NULL;
long counter = 0;
char label[32] = "initial";

/* Busy for `ms` milliseconds (so that perf's cpu-clock samples land in every step). */
static void spin_ms(long ms) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < ms * 1000000L);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    mapagent_watch_sample_if_loaded(); /* 1: NULL, 0, "initial" */
    current_query = "SELECT 1";
    counter = 1;
    strcpy(label, "first");
    mapagent_watch_sample_if_loaded(); /* 2 */
    current_query = (const char *)16; /* points nowhere: recorded as unreadable */
    counter = 2;
    mapagent_watch_sample_if_loaded(); /* 3 */
    /* A string running into an unmapped page: what precedes the hole is kept. */
    char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(two + 4096, 4096);
    memcpy(two + 4096 - 4, "TAIL", 4);
    current_query = two + 4096 - 4;
    counter = 3;
    mapagent_watch_sample_if_loaded(); /* 4 */
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!h) return fprintf(stderr, "%s\n", dlerror()), 1;
    int *data = dlsym(h, "plug_w_data");
    *data = 42;
    current_query = "UPDATE t SET x = 1";
    counter = 4;
    mapagent_watch_sample_if_loaded(); /* 5: the plugin's global found after the dlopen */
    /* Changes between samples taken every MAPAGENT_WATCH_MS, 40 ms of work each. */
    for (int i = 10; i < 20; i++) {
        counter = i;
        spin_ms(40);
    }
    printf("done\n");
    return 0;
}
