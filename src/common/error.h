/* error.h - error reporting for library code.
 *
 * Library functions never exit: they return -1 (or NULL) after recording a
 * human-readable message with zi_err(). The message is thread-local and is
 * read back with zi_last_error(). Only the CLI prints and exits. */
#ifndef ZI_ERROR_H
#define ZI_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define ZI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ZI_PRINTF(a, b)
#endif

/* Record an error message (printf-style); always returns -1. */
int zi_err(const char *fmt, ...) ZI_PRINTF(1, 2);
/* Prefix the current message with more context: "ctx: old message". Returns -1. */
int zi_err_ctx(const char *fmt, ...) ZI_PRINTF(1, 2);
/* The last recorded message ("" if none). */
const char *zi_last_error(void);
void zi_err_clear(void);

/* Checked allocation: on failure (or absurd size) records an error, returns NULL. */
void *zi_malloc(size_t n);
void *zi_calloc(size_t count, size_t size);
/* 64-byte aligned allocation for SIMD buffers; free with zi_free_aligned. */
void *zi_malloc_aligned(size_t n);
void zi_free_aligned(void *p);
char *zi_strdup(const char *s);
/* The message of a failed allocation of n bytes ("out of memory allocating 12.0 MiB ..."). Returns -1. */
int zi_err_oom(size_t n, const char *what);

/* Fault injection, for tests only (tests/unit/unit_oom.c). Every checked allocation above and
 * every new buffer of the kernels' scratch pool takes a number (1, 2, ... since the last
 * zi_alloc_fail_nth call, all threads together); zi_alloc_fail_nth(n) makes allocation number
 * n fail as if out of memory (n <= 0: none fails). zi_alloc_count: numbers taken so far.
 * zi_alloc_fault: take the next number; 1 if that allocation must fail (allocators call it). */
void zi_alloc_fail_nth(long n);
long zi_alloc_count(void);
int zi_alloc_fault(void);

#endif
