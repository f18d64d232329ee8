/* What a program can see of its own process, printed so that a run with the agent can be
 * compared with one without: its descriptors (number and target), its threads, errno after
 * hooked calls that fail, its signal mask and dispositions, its rlimits, the environment a
 * child would get, and the descriptor the next open() returns. Nothing here may differ. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <unistd.h>

extern char **environ;

static void list(const char *dir, int links) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s: cannot open\n", dir);
        return;
    }
    int self = dirfd(d);
    struct dirent *e;
    char names[256][300];
    int n = 0;
    while ((e = readdir(d)) && n < 256) {
        if (e->d_name[0] == '.' || (links && atoi(e->d_name) == self)) continue;
        char target[256] = "";
        if (links) {
            char p[300];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            ssize_t k = readlink(p, target, sizeof target - 1);
            if (k > 0) target[k] = 0;
            /* pipes and sockets carry inode numbers that differ run to run */
            if (!strncmp(target, "pipe:", 5) || !strncmp(target, "socket:", 7)) target[4] = 0;
        }
        snprintf(names[n++], sizeof names[0], "%s%s%s", e->d_name, links ? " -> " : "", target);
    }
    closedir(d);
    /* readdir order is the kernel's; sort for a stable listing */
    qsort(names, n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    printf("%s: %d entries\n", dir, n);
    for (int i = 0; i < n && links; i++) printf("  %s\n", names[i]);
}

int main(void) {
    list("/proc/self/fd", 1);
    list("/proc/self/task", 0);

    /* errno after hooked calls that fail, and after one that succeeds */
    errno = 0;
    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 12345, 0);
    printf("mmap bad fd: %s errno=%d\n", p == MAP_FAILED ? "failed" : "mapped", errno);
    errno = 0;
    int r = munmap((void *)1, 4096);
    printf("munmap unaligned: %d errno=%d\n", r, errno);
    errno = 0;
    r = mprotect((void *)4096, 4096, PROT_READ);
    printf("mprotect unmapped: %d errno=%d\n", r, errno);
    errno = 0;
    p = mremap((void *)4096, 4096, 8192, 0);
    printf("mremap unmapped: %s errno=%d\n", p == MAP_FAILED ? "failed" : "moved", errno);
    errno = 0;
    void *sh = shmat(-1, NULL, 0);
    printf("shmat bad id: %s errno=%d\n", sh == (void *)-1 ? "failed" : "attached", errno);
    errno = 0;
    printf("dlopen missing: %s\n", dlopen("libdoes-not-exist.so.9", RTLD_NOW) ? "loaded" : "NULL");
    errno = 77;
    p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap ok keeps errno: %d\n", errno);
    munmap(p, 4096);

    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    printf("blocked:");
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&mask, s) == 1) printf(" %d", s);
    printf("\ndispositions:");
    for (int s = 1; s < NSIG; s++) {
        struct sigaction sa;
        if (sigaction(s, NULL, &sa) != 0) continue;
        if (sa.sa_handler == SIG_DFL) continue;
        printf(" %d=%s", s, sa.sa_handler == SIG_IGN ? "ign" : "handler");
    }
    printf("\n");

    static const struct { int r; const char *name; } lims[] = {
        {RLIMIT_NOFILE, "nofile"}, {RLIMIT_AS, "as"},       {RLIMIT_STACK, "stack"},
        {RLIMIT_MEMLOCK, "memlock"}, {RLIMIT_NPROC, "nproc"}, {RLIMIT_CORE, "core"},
    };
    for (unsigned i = 0; i < sizeof lims / sizeof lims[0]; i++) {
        struct rlimit rl;
        getrlimit(lims[i].r, &rl);
        printf("rlimit %s: %llu %llu\n", lims[i].name, (unsigned long long)rl.rlim_cur,
               (unsigned long long)rl.rlim_max);
    }

    /* what a child would inherit, apart from the agent's own variables */
    int nenv = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "MAPAGENT_", 9)) nenv++;
    printf("environment: %d variables\n", nenv);

    int fd = open("/dev/null", O_RDONLY);
    printf("next descriptor: %d\n", fd);
    return 0;
}
