/* dlopen by bare name through the executable's RUNPATH ($ORIGIN/sub), and by a "$ORIGIN/..."
 * path: both resolve relative to the caller, which an interposed dlopen must not change. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *h = dlopen("libplug_rp.so", RTLD_NOW);
    if (!h) { fprintf(stderr, "bare name: %s\n", dlerror()); return 1; }
    void *h2 = dlopen("$ORIGIN/sub/libplug_rp.so", RTLD_NOW);
    if (!h2) { fprintf(stderr, "$ORIGIN: %s\n", dlerror()); return 2; }
    if (h != h2) { fprintf(stderr, "two different objects\n"); return 3; }
    int (*work)(int) = (int (*)(int))dlsym(h, "plug_rp_work");
    printf("runpath ok %d\n", work ? work(0) : -1);
    return 0;
}
