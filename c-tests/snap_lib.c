/* A library with 16 pages of initialised writable data: each page the program writes is
 * copied on write, so snapshots taken before and after show the difference. */
#define PAGES 16
int snap_table[PAGES * 4096 / sizeof(int)] = {1};

void snap_touch(int pages) {
    for (int i = 0; i < pages && i < PAGES; i++) snap_table[i * 4096 / sizeof(int) + 1] = i + 2;
}
