/* SysV shared memory through the agent's shmat/shmdt hooks: creates a 2-page segment, attaches
 * it twice, writes through one attachment, detaches the other, marks the segment for removal
 * (it goes when the process exits) and prints "shmid first second". */
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(void) {
    int id = shmget(IPC_PRIVATE, 2 * 4096, IPC_CREAT | 0600);
    if (id < 0) return perror("shmget"), 1;
    char *a = shmat(id, NULL, 0);
    char *b = shmat(id, NULL, SHM_RDONLY);
    if (a == (void *)-1 || b == (void *)-1) return perror("shmat"), 1;
    strcpy(a, "hello");
    if (strcmp(b, "hello") != 0) return 1;
    if (shmdt(b) != 0) return perror("shmdt"), 1;
    shmctl(id, IPC_RMID, NULL);
    printf("%d %p %p\n", id, (void *)a, (void *)b);
    return 0;
}
