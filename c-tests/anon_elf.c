/* An in-memory loader in miniature: copies a library's file image into anonymous memory, makes
 * it executable, and runs one of its functions from there (one that needs no relocation).
 * perf sees only //anon code; mapagent keeps the image and writes /tmp/perf-PID.map.
 *   anon_elf LIB FUNCTION SECONDS */
#include "checkpoint.h"
#include <elf.h>
#include <sys/mman.h>
#include <sys/stat.h>

static size_t file_offset_of(const unsigned char *img, const char *fn) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB) continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(img + sh[i].sh_offset);
        const char *str = (const char *)(img + sh[sh[i].sh_link].sh_offset);
        for (size_t k = 0; k < sh[i].sh_size / sizeof *sym; k++) {
            if (strcmp(str + sym[k].st_name, fn)) continue;
            const Elf64_Shdr *in = &sh[sym[k].st_shndx];
            return sym[k].st_value - in->sh_addr + in->sh_offset;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    CHECK(argc == 4);
    int fd = open(argv[1], O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    unsigned char *img = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(img != MAP_FAILED);
    CHECK(read(fd, img, st.st_size) == st.st_size);
    close(fd);
    size_t off = file_offset_of(img, argv[2]);
    CHECK(off != 0);
    CHECK(mprotect(img, st.st_size, PROT_READ | PROT_EXEC) == 0);
    unsigned long (*spin)(unsigned long) = (unsigned long (*)(unsigned long))(img + off);
    printf("base=%p fn=%p\n", (void *)img, (void *)spin);
    fflush(stdout);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile unsigned long s = 0;
    do {
        s += spin(1000000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < atof(argv[3]));
    return 0;
}
