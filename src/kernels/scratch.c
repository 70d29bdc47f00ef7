/* scratch.c - the kernels' one scratch-buffer mechanism: a small pool of 64-byte aligned
 * buffers reused across calls (impl.h kn_scratch_get/put).
 *
 * Fresh pages cost one page fault each, which is expensive (notably in VMs) when a 65 MB
 * attention buffer or 2 MB packing buffers would be allocated per call. The pool keeps at
 * most KN_POOL_MAX_BYTES of idle buffers; it is shared by all threads (mutex), holds no
 * settings, and kn_scratch_trim releases everything idle (the pipeline calls it between
 * stages). A buffer is in use by exactly one caller between get and put. */
#include <pthread.h>
#include <stdlib.h>

#include "impl.h"

#define KN_POOL_SLOTS 16
#define KN_POOL_MAX_BYTES ((size_t)768 << 20) /* retain at most this much in total */

static struct {
    void *p;
    size_t n;
    int busy;
} kn_pool[KN_POOL_SLOTS];
static size_t kn_pool_bytes;
static pthread_mutex_t kn_pool_lock = PTHREAD_MUTEX_INITIALIZER;

void *kn_scratch_get(size_t n) {
    if (n > ((size_t)1 << 46)) return NULL; /* absurd size */
    n = (n + 63) / 64 * 64;
    if (n == 0) n = 64;
    pthread_mutex_lock(&kn_pool_lock);
    int best = -1;
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p && !kn_pool[i].busy && kn_pool[i].n >= n && (best < 0 || kn_pool[i].n < kn_pool[best].n))
            best = i;
    if (best >= 0) {
        kn_pool[best].busy = 1;
        pthread_mutex_unlock(&kn_pool_lock);
        return kn_pool[best].p;
    }
    /* make room: drop idle buffers that are too small, while over budget or out of slots */
    int empty = -1;
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (!kn_pool[i].p) empty = i;
    for (int i = 0; i < KN_POOL_SLOTS && (empty < 0 || kn_pool_bytes + n > KN_POOL_MAX_BYTES); i++)
        if (kn_pool[i].p && !kn_pool[i].busy) {
            free(kn_pool[i].p);
            kn_pool_bytes -= kn_pool[i].n;
            kn_pool[i].p = NULL;
            empty = i;
        }
    void *p = aligned_alloc(64, n);
    if (p && empty >= 0 && kn_pool_bytes + n <= KN_POOL_MAX_BYTES) {
        kn_pool[empty].p = p, kn_pool[empty].n = n, kn_pool[empty].busy = 1;
        kn_pool_bytes += n;
    }
    pthread_mutex_unlock(&kn_pool_lock);
    return p;
}

void kn_scratch_put(void *p) {
    if (!p) return;
    pthread_mutex_lock(&kn_pool_lock);
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p == p) {
            kn_pool[i].busy = 0;
            pthread_mutex_unlock(&kn_pool_lock);
            return;
        }
    pthread_mutex_unlock(&kn_pool_lock);
    free(p); /* not pooled */
}

void kn_scratch_trim(void) {
    pthread_mutex_lock(&kn_pool_lock);
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p && !kn_pool[i].busy) {
            free(kn_pool[i].p);
            kn_pool_bytes -= kn_pool[i].n;
            kn_pool[i].p = NULL;
        }
    pthread_mutex_unlock(&kn_pool_lock);
}
