/* page.c - the web page (page.html next to this file) embedded into the binary with the
 * assembler's .incbin, so the HTML stays an ordinary file that can be edited and viewed.
 * The Makefile makes page.o depend on page.html and builds from the repository root. */
#include "http.h"

__asm__(".section .rodata\n"
        ".global srv_page_html\n"
        ".type srv_page_html, @object\n"
        ".balign 16\n"
        "srv_page_html:\n"
        ".incbin \"src/server/page.html\"\n"
        ".byte 0\n"
        ".global srv_page_html_len\n"
        ".type srv_page_html_len, @object\n"
        ".balign 4\n"
        "srv_page_html_len:\n"
        ".int srv_page_html_len - srv_page_html - 1\n"
        ".previous\n");
