/* main.c - the zimage command-line program (placeholder until the CLI lands). */
#include <stdio.h>

int main(void) {
    printf("zimage\n");
    return 0;
}
