/* One program, several endings and hazards, chosen by argv[1]:
 *   segv | abort | exit7 | sleep | signals N | vfork | spawn | storm THREADS ROUNDS
 * Each first maps a recognisable region so the records have something to show. */
#include "checkpoint.h"
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dlfcn.h>
#include <link.h>
#include <sched.h>

extern char **environ;
static volatile sig_atomic_t got, wrong_thread;
static volatile pid_t catcher;

static void on_usr1(int sig) {
    (void)sig;
    if (syscall(SYS_gettid) != catcher) wrong_thread++;
    got++;
}

/* The one thread that leaves SIGUSR1 unblocked: process-directed SIGUSR1 must land here. */
static void *catch_usr1(void *arg) {
    int n = *(int *)arg;
    catcher = (pid_t)syscall(SYS_gettid);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    printf("ready\n");
    fflush(stdout);
    while (got < n) pause();
    return NULL;
}

static int reopen_cb(struct dl_phdr_info *info, size_t size, void *lib) {
    (void)info;
    (void)size;
    void *h = dlopen((const char *)lib, RTLD_NOW);
    CHECK(h != NULL);
    CHECK(dlclose(h) == 0);
    return 1; /* once per walk */
}

static long rounds;
static void *storm(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        CHECK(munmap(p, 4096) == 0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc > 1);
    char *mark = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mark != MAP_FAILED);
    mark[0] = 1;
    printf("mark=%p\n", (void *)mark);
    fflush(stdout);
    const char *m = argv[1];
    if (!strcmp(m, "segv")) {
        *(volatile int *)16 = 1;
    } else if (!strcmp(m, "abort")) {
        abort();
    } else if (!strcmp(m, "exit7")) {
        _exit(7);
    } else if (!strcmp(m, "sleep")) {
        for (;;) pause();
    } else if (!strcmp(m, "signals")) {
        /* Like programs with a signal-handling thread: main blocks SIGUSR1, one thread takes
         * it. The agent's writer thread must never be chosen for delivery. */
        int n = atoi(argv[2]);
        signal(SIGUSR1, on_usr1);
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &s, NULL);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, catch_usr1, &n) == 0);
        CHECK(pthread_join(t, NULL) == 0);
        printf("got=%d wrong_thread=%d\n", (int)got, (int)wrong_thread);
    } else if (!strcmp(m, "vfork")) {
        pid_t p = vfork();
        if (p == 0) {
            char *args[] = {"true", NULL};
            execv("/bin/true", args);
            _exit(127);
        }
        int st;
        CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        pid_t q;
        char *args[] = {"true", NULL};
        CHECK(posix_spawn(&q, "/bin/true", NULL, NULL, args, environ) == 0);
        CHECK(waitpid(q, &st, 0) == q && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        char *after = mmap(NULL, 5 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(after != MAP_FAILED);
        printf("after=%p\n", (void *)after);
        } else if (!strcmp(m, "int3")) {
        __asm__ volatile("int3"); /* SIGTRAP, si_code SI_KERNEL: must still end the process */
        printf("survived int3\n");
    } else if (!strcmp(m, "unshare")) {
        /* A new user namespace needs a single-threaded process. */
        CHECK(unshare(CLONE_NEWUSER) == 0);
        printf("unshared\n");
    } else if (!strcmp(m, "lowfd")) {
        /* The classic pattern: close(0), and expect the next open to be 0 again, around a
         * dlopen. The agent's own descriptor must not take the number. */
        close(0);
        void *h = dlopen(argv[2], RTLD_NOW);
        CHECK(h != NULL);
        int fd = open("/dev/null", O_RDONLY);
        printf("fd=%d\n", fd);
    } else if (!strcmp(m, "dlopen-in-walk")) {
        /* dlopen/dlclose from inside dl_iterate_phdr callbacks (legal: the lock is recursive),
         * many times, while the agent's writer may be walking too. */
        for (int i = 0; i < 2000; i++) CHECK(dl_iterate_phdr(reopen_cb, argv[2]) == 1);
        printf("walked\n");
    } else if (!strcmp(m, "find")) {
        /* Is a mapping whose path contains argv[2] in our own address space? */
        checkpoint("find");
        printf("found=%d\n", strstr(cp_maps, argv[2]) != NULL);
    } else if (!strcmp(m, "storm")) {
        int threads = atoi(argv[2]);
        rounds = atol(argv[3]);
        pthread_t t[64];
        for (int i = 0; i < threads; i++) CHECK(pthread_create(&t[i], NULL, storm, NULL) == 0);
        for (int i = 0; i < threads; i++) CHECK(pthread_join(t[i], NULL) == 0);
    }
    return 0;
}
