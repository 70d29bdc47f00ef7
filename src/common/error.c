/* error.c - thread-local error message and checked allocation helpers. */
#include "error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char zi_errbuf[2048];

int zi_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(zi_errbuf, sizeof zi_errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

int zi_err_ctx(const char *fmt, ...) {
    char prefix[512], old[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, zi_errbuf, sizeof old - 1);
    old[sizeof old - 1] = 0;
    snprintf(zi_errbuf, sizeof zi_errbuf, "%s: %s", prefix, old);
    return -1;
}

const char *zi_last_error(void) { return zi_errbuf; }
void zi_err_clear(void) { zi_errbuf[0] = 0; }

#define ZI_MAX_ALLOC ((size_t)1 << 40) /* 1 TiB: anything above is a bug or bad input */

/* Fault injection (tests): the one piece of mutable process-wide state, inert unless a test
 * arms it; relaxed atomics, so it costs one uncontended add per allocation. */
static atomic_long zi_alloc_seq, zi_alloc_fail_at;

void zi_alloc_fail_nth(long n) {
    atomic_store(&zi_alloc_fail_at, n);
    atomic_store(&zi_alloc_seq, 0);
}

long zi_alloc_count(void) { return atomic_load(&zi_alloc_seq); }

int zi_alloc_fault(void) {
    long k = atomic_fetch_add_explicit(&zi_alloc_seq, 1, memory_order_relaxed) + 1;
    return k == atomic_load_explicit(&zi_alloc_fail_at, memory_order_relaxed);
}

int zi_err_oom(size_t n, const char *what) {
    const char *w = what ? what : "", *sep = what ? " for " : "";
    if (n >= ((size_t)1 << 20))
        return zi_err("out of memory allocating %.1f MiB%s%s", (double)n / (1 << 20), sep, w);
    return zi_err("out of memory allocating %zu bytes%s%s", n, sep, w);
}

void *zi_malloc(size_t n) {
    if (n > ZI_MAX_ALLOC) {
        zi_err("allocation of %zu bytes refused (absurd size)", n);
        return NULL;
    }
    void *p = zi_alloc_fault() ? NULL : malloc(n ? n : 1);
    if (!p) zi_err_oom(n, NULL);
    return p;
}

void *zi_calloc(size_t count, size_t size) {
    if (size && count > ZI_MAX_ALLOC / size) {
        zi_err("allocation of %zu x %zu bytes refused (absurd size)", count, size);
        return NULL;
    }
    void *p = zi_alloc_fault() ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p) zi_err_oom(count * size, NULL);
    return p;
}

void *zi_malloc_aligned(size_t n) {
    if (n > ZI_MAX_ALLOC) {
        zi_err("allocation of %zu bytes refused (absurd size)", n);
        return NULL;
    }
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (zi_alloc_fault() || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        zi_err_oom(n, NULL);
        return NULL;
    }
    return p;
}

void zi_free_aligned(void *p) { free(p); }

char *zi_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = zi_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
