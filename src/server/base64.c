/* base64.c - base64 encoder/decoder (RFC 4648 alphabet, '=' padding). */
#include "base64.h"

#include <stdlib.h>

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *srv_base64_encode(const uint8_t *data, size_t n) {
    if (n > ((size_t)-1 / 4) * 3 - 3) return NULL;
    size_t m = (n + 2) / 3 * 4;
    char *s = malloc(m + 1);
    if (!s) return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) { /* 3 bytes -> 4 characters */
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        s[o++] = b64_alphabet[v >> 18];
        s[o++] = b64_alphabet[(v >> 12) & 63];
        s[o++] = b64_alphabet[(v >> 6) & 63];
        s[o++] = b64_alphabet[v & 63];
    }
    if (i < n) { /* 1 or 2 bytes left: pad */
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        s[o++] = b64_alphabet[v >> 18];
        s[o++] = b64_alphabet[(v >> 12) & 63];
        s[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        s[o++] = '=';
    }
    s[o] = 0;
    return s;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int srv_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    while (n > 0 && s[n - 1] == '=') n--; /* padding is optional */
    if (n % 4 == 1) return -1;
    uint8_t *b = malloc(n / 4 * 3 + 3);
    if (!b) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0) {
            free(b);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = b;
    *out_len = o;
    return 0;
}
