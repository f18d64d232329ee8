/* The executable exports which() too (-rdynamic). RTLD_DEEPBIND makes the library bind to its
 * own; without it the executable's would win. An interposed dlopen must not change either. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

const char *which(void) { return "executable"; }

int main(int argc, char **argv) {
    int mode = RTLD_NOW | (argc > 2 && !strcmp(argv[2], "deep") ? RTLD_DEEPBIND : 0);
    void *h = dlopen(argv[1], mode);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    const char *(*call)(void) = (const char *(*)(void))dlsym(h, "call_which");
    printf("%s\n", call());
    return 0;
}
