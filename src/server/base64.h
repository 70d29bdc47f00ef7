/* base64.h - standard base64 (RFC 4648, with padding) for PNGs in JSON answers.
 * Part of the server (src/server/), not of libzimage. */
#ifndef SRV_BASE64_H
#define SRV_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* New NUL-terminated string (free with free()), or NULL when out of memory. */
char *srv_base64_encode(const uint8_t *data, size_t n);

/* Decode standard base64 (padding optional, no whitespace) into a new buffer
 * (free with free()); returns -1 on any invalid character or length. For img2img uploads. */
int srv_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len);

#endif
