/* A library dlopen'ed, closed, its address taken by a MAP_FIXED mapping, then dlopen'ed again:
 * the second load base differs (the seed question about perf and load addresses). Prints the
 * two bases; with "spin" it also burns CPU in the library so perf has samples there. */
#include "checkpoint.h"
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>

static unsigned long base_of(void *h) {
    struct link_map *lm = NULL;
    CHECK(dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0);
    return (unsigned long)lm->l_addr;
}

int main(int argc, char **argv) {
    const char *lib = argv[1];
    int spin = argc > 2 && strcmp(argv[2], "spin") == 0;
    void *h = dlopen(lib, RTLD_NOW);
    CHECK(h != NULL);
    unsigned long first = base_of(h);
    int (*work)(int) = (int (*)(int))dlsym(h, "plug_a_work");
    CHECK(work);
    volatile long sink = 0;
    if (spin)
        for (long i = 0; i < 20000000; i++) sink += work((int)i);
    checkpoint("first-load");
    CHECK(dlclose(h) == 0);
    /* Take the library's old place. */
    void *p = mmap((void *)first, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(p == (void *)first);
    memset(p, 1, 4096);
    checkpoint("fixed-taken");
    h = dlopen(lib, RTLD_NOW);
    CHECK(h != NULL);
    unsigned long second = base_of(h);
    CHECK(second != first);
    work = (int (*)(int))dlsym(h, "plug_a_work");
    if (spin)
        for (long i = 0; i < 20000000; i++) sink += work((int)i);
    checkpoint("second-load");
    printf("first=%#lx second=%#lx\n", first, second);
    return 0;
}
