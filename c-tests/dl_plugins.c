/* Several libraries dlopen'ed and dlclose'd, with checkpoints in between. */
#include "checkpoint.h"
#include <dlfcn.h>

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[3][4096];
    const char *names[3] = {"a", "b", "c"};
    void *h[3];
    checkpoint("start");
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/libplug_%s.so", dir, names[i]);
        h[i] = dlopen(path[i], RTLD_NOW);
        CHECK(h[i] != NULL);
        char sym[64];
        snprintf(sym, sizeof sym, "plug_%s_work", names[i]);
        int (*work)(int) = (int (*)(int))dlsym(h[i], sym);
        CHECK(work != NULL && work(1) > 0);
    }
    checkpoint("loaded-3");
    CHECK(dlclose(h[1]) == 0);
    checkpoint("closed-b");
    CHECK(dlclose(h[0]) == 0);
    CHECK(dlclose(h[2]) == 0);
    checkpoint("closed-all");
    h[1] = dlopen(path[1], RTLD_LAZY);
    CHECK(h[1] != NULL);
    checkpoint("reopened-b");
    return 0;
}
