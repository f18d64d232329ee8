/* A process worth a core dump: a memfd "magic ring buffer" (one memfd mapped twice back to
 * back), a dlopen'ed library, a SysV segment, and a private file mapping with one written
 * page.  core_subject LIB DATAFILE wait|crash
 *   wait:  prints "ready PID", then waits for a line on stdin (gcore it meanwhile);
 *   crash: raises SIGSEGV (the kernel writes the core). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#define RING (64 * 1024)

/* A .bss larger than the data file's last page: an anonymous mapping of its own right after
 * the program's file mappings, which is not the heap. */
static char big_bss[256 * 1024];

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int fd = memfd_create("magicringbuffer", 0);
    if (fd < 0 || ftruncate(fd, RING) != 0) return perror("memfd"), 1;
    char *base = mmap(NULL, 2 * RING, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mmap(base, RING, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != base ||
        mmap(base + RING, RING, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != base + RING)
        return perror("ring"), 1;
    strcpy(base + RING - 3, "wrapped"); /* written across the seam, read back at the start */
    if (memcmp(base, "pped", 4) != 0) return 1;

    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) return fprintf(stderr, "%s\n", dlerror()), 1;

    int shmid = shmget(IPC_PRIVATE, 4 * 4096, IPC_CREAT | 0600);
    char *shm = shmat(shmid, NULL, 0);
    if (shm == (void *)-1) return perror("shmat"), 1;
    strcpy(shm, "sysv");
    shmctl(shmid, IPC_RMID, NULL); /* gone with the process */

    int dfd = open(argv[2], O_RDONLY);
    char *data = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, dfd, 0);
    if (data == MAP_FAILED) return perror("data"), 1;
    close(dfd);
    data[4096] = 'x'; /* one copied-on-write page */

    char *heap = malloc(100000); /* below the mmap threshold: from brk */
    memset(heap, 1, 100000);
    memset(big_bss, 2, sizeof big_bss);
    printf("ready %d ring=%p shm=%p data=%p heap=%p\n", getpid(), (void *)base, (void *)shm,
           (void *)data, (void *)heap);
    fflush(stdout);
    if (!strcmp(argv[3], "crash")) {
        raise(SIGSEGV);
    } else {
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 0;
    }
    return 0;
}
