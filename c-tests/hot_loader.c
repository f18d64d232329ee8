/* Loads a copy of a library in a way perf cannot follow, then spends its time in it:
 *   hot_loader memfd LIB SECONDS     copy LIB into a memfd, dlopen /proc/self/fd/N
 *   hot_loader deleted LIB SECONDS   copy LIB to a temp file, dlopen it, delete the file
 *   hot_loader swap LIBA LIBB SECONDS READYFILE
 *       run in LIBA, dlclose it, dlopen LIBB at the same address (retrying with a
 *       placeholder mapping if needed), write READYFILE, then run in LIBB
 *   hot_loader swap-wait LIBA LIBB SECONDS READYFILE GOFILE
 *       the same with copies of both libraries deleted right after their dlopen, and
 *       SECONDS in each: writes READYFILE.a once LIBA is loaded, waits for GOFILE (so a
 *       profiler can attach), runs in LIBA, swaps, writes READYFILE, runs in LIBB */
#include "checkpoint.h"
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

typedef unsigned long (*run_fn)(double);

static int copy_into(int out, const char *lib) {
    int in = open(lib, O_RDONLY);
    CHECK(in >= 0);
    struct stat st;
    CHECK(fstat(in, &st) == 0);
    off_t off = 0;
    while (off < st.st_size) CHECK(sendfile(out, in, &off, st.st_size - off) > 0);
    close(in);
    return out;
}

/* dlopen of a temporary copy of LIB, deleted once loaded. */
static void *open_deleted(const char *lib, const char *tag) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/libhot-%s-%d.so", tag, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    CHECK(fd >= 0);
    copy_into(fd, lib);
    close(fd);
    void *h = dlopen(path, RTLD_NOW);
    CHECK(h != NULL);
    CHECK(unlink(path) == 0);
    return h;
}

static void touch(const char *path) {
    int r = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(r >= 0);
    close(r);
}

static unsigned long base_of(void *h) {
    struct link_map *lm;
    CHECK(dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0);
    return lm->l_addr;
}

static void run(void *h, double secs) {
    run_fn f = (run_fn)dlsym(h, "hot_run");
    CHECK(f != NULL);
    f(secs);
}

int main(int argc, char **argv) {
    CHECK(argc >= 4);
    const char *mode = argv[1];
    char path[256];
    if (!strcmp(mode, "memfd")) {
        int fd = memfd_create("hotlib", 0);
        CHECK(fd >= 0);
        copy_into(fd, argv[2]);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        void *h = dlopen(path, RTLD_NOW);
        CHECK(h != NULL);
        close(fd);
        printf("base=%#lx\n", base_of(h));
        fflush(stdout);
        run(h, atof(argv[3]));
    } else if (!strcmp(mode, "deleted")) {
        snprintf(path, sizeof path, "/tmp/libhot-deleted-%d.so", (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
        CHECK(fd >= 0);
        copy_into(fd, argv[2]);
        close(fd);
        void *h = dlopen(path, RTLD_NOW);
        CHECK(h != NULL);
        CHECK(unlink(path) == 0);
        printf("base=%#lx\n", base_of(h));
        fflush(stdout);
        run(h, atof(argv[3]));
    } else if (!strcmp(mode, "swap") || !strcmp(mode, "swap-wait")) {
        int wait = !strcmp(mode, "swap-wait");
        CHECK(argc >= 6 + wait);
        double secs = atof(argv[4]);
        void *a = wait ? open_deleted(argv[2], "a") : dlopen(argv[2], RTLD_NOW);
        CHECK(a != NULL);
        unsigned long base_a = base_of(a);
        if (wait) {
            snprintf(path, sizeof path, "%s.a", argv[5]);
            touch(path);
            while (access(argv[6], F_OK) != 0) usleep(10000);
        }
        run(a, wait ? secs : secs / 4);
        CHECK(dlclose(a) == 0);
        void *b = NULL;
        for (int tries = 0; tries < 64 && !b; tries++) {
            b = wait ? open_deleted(argv[3], "b") : dlopen(argv[3], RTLD_NOW);
            CHECK(b != NULL);
            if (base_of(b) != base_a) {
                /* Landed elsewhere: occupy that spot and try again. */
                unsigned long got = base_of(b);
                CHECK(dlclose(b) == 0);
                b = NULL;
                CHECK(mmap((void *)got, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != MAP_FAILED);
            }
        }
        CHECK(b != NULL && base_of(b) == base_a);
        printf("base=%#lx\n", base_a);
        fflush(stdout);
        touch(argv[5]);
        run(b, secs);
    }
    return 0;
}
