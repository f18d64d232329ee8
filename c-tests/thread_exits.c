/* The ways a threaded program ends that an agent thread in the process would disturb:
 *   pthread-exit   main calls pthread_exit(0) as the only thread: exit status 0
 *   last-thread    main calls pthread_exit while a thread still maps memory; that thread
 *                  ends the process when it returns: status 0
 *   main-returns   main returns 5 while another thread is mapping memory: status 5
 *   fork-thread    a non-main thread forks; the child maps memory and exits 3, the parent
 *                  waits for it and prints child=3
 *   tasks          prints tasks=N (entries in /proc/self/task) and fds=<list of /proc/self/fd>
 *                  with one thread of its own running: what the program sees of itself */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void map_some(int n) {
    for (int i = 0; i < n; i++) {
        char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) exit(90);
        p[0] = 1;
        munmap(p, 65536);
    }
}

static void *mapper(void *arg) {
    usleep(50000);
    map_some((int)(long)arg);
    return NULL;
}

static void *forker(void *arg) {
    (void)arg;
    pid_t c = fork();
    if (c == 0) {
        map_some(10);
        _exit(3);
    }
    int st = 0;
    if (c < 0 || waitpid(c, &st, 0) != c) exit(91);
    printf("child=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    fflush(stdout);
    return NULL;
}

static pthread_barrier_t ready, done;
static void *waiter(void *arg) {
    (void)arg;
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static int count_dir(const char *path, char *list, size_t cap) {
    DIR *d = opendir(path);
    if (!d) exit(92);
    int fd = dirfd(d), n = 0;
    struct dirent *e;
    size_t used = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (list && atoi(e->d_name) == fd) continue; /* the directory being read */
        n++;
        if (list) used += snprintf(list + used, cap - used, "%s%s", used ? "," : "", e->d_name);
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    pthread_t t;
    if (!strcmp(mode, "pthread-exit")) {
        map_some(10);
        pthread_exit(NULL);
    }
    if (!strcmp(mode, "last-thread")) {
        if (pthread_create(&t, NULL, mapper, (void *)1000L)) return 93;
        pthread_exit(NULL);
    }
    if (!strcmp(mode, "main-returns")) {
        if (pthread_create(&t, NULL, mapper, (void *)1000000L)) return 93;
        usleep(100000);
        return 5;
    }
    if (!strcmp(mode, "fork-thread")) {
        if (pthread_create(&t, NULL, forker, NULL) || pthread_join(t, NULL)) return 93;
        return 0;
    }
    if (!strcmp(mode, "tasks")) {
        pthread_barrier_init(&ready, NULL, 2);
        pthread_barrier_init(&done, NULL, 2);
        if (pthread_create(&t, NULL, waiter, NULL)) return 93;
        pthread_barrier_wait(&ready);
        char fds[4096] = "";
        int tasks = count_dir("/proc/self/task", NULL, 0);
        count_dir("/proc/self/fd", fds, sizeof fds);
        printf("tasks=%d fds=%s\n", tasks, fds);
        pthread_barrier_wait(&done);
        pthread_join(t, NULL);
        return 0;
    }
    fprintf(stderr, "usage: thread_exits pthread-exit|last-thread|main-returns|fork-thread|tasks\n");
    return 2;
}
