/* A program using the library: looks up every entry, so every page of the table is read. */
#include <stdio.h>
int op_flags(int code);
int main(void) {
    long sum = 0;
    for (int i = 0; i < 2048; i++) sum += op_flags(i);
    printf("%ld\n", sum);
    return 0;
}
