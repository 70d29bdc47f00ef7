/* scratch.c - the one scratch-buffer mechanism of the library (kernels.h kn_scratch_get/put):
 * a pool of aligned buffers reused across calls, serving the kernels' packing and attention
 * buffers, the convs' staged rows and packed weights, and the VAE's activations.
 *
 * Fresh pages cost one page fault each, which is expensive (notably in VMs) when a 65 MB
 * attention buffer or a 512 MB VAE activation would be allocated per call, so idle buffers are
 * kept and handed out again (best fit). Peak memory stays at the live set: when no idle buffer
 * is big enough, every idle buffer (all of them too small) is released before the new
 * allocation. A buffer put back is kept only while the idle bytes stay within
 * max(KN_POOL_KEEP_BYTES, bytes in use), and kn_scratch_trim releases everything idle (the
 * pipeline calls it between stages, the VAE at the end of a decode/encode). The pool is shared
 * by all threads (mutex), holds no settings, and a buffer belongs to exactly one caller between
 * get and put. Buffers of 4 MiB and more are 2 MiB aligned and advised to use transparent huge
 * pages (first-touch faults were ~6% of a 1024x1024 VAE decode with 4 KiB pages). */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "../common/error.h"
#include "impl.h"

#define KN_POOL_SLOTS 32
#define KN_POOL_KEEP_BYTES ((size_t)768 << 20) /* idle bytes kept at rest */
#define KN_POOL_HUGE ((size_t)4 << 20)         /* from this size: 2 MiB aligned, huge pages */

static struct {
    void *p;
    size_t n;
    int busy;
} kn_pool[KN_POOL_SLOTS];
static size_t kn_pool_idle, kn_pool_busy; /* bytes of pooled buffers */
static pthread_mutex_t kn_pool_lock = PTHREAD_MUTEX_INITIALIZER;

static void *kn_scratch_alloc(size_t n) {
    void *p = NULL;
    if (zi_alloc_fault() || posix_memalign(&p, n >= KN_POOL_HUGE ? KN_POOL_HUGE / 2 : 64, n) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (n >= KN_POOL_HUGE) madvise(p, n, MADV_HUGEPAGE); /* a hint; failure is harmless */
#endif
    return p;
}

void *kn_scratch_get(size_t n) {
    if (n > ((size_t)1 << 46)) {
        zi_err("scratch buffer of %zu bytes refused (absurd size)", n);
        return NULL;
    }
    n = (n + 63) / 64 * 64;
    if (n == 0) n = 64;
    pthread_mutex_lock(&kn_pool_lock);
    int best = -1;
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p && !kn_pool[i].busy && kn_pool[i].n >= n && (best < 0 || kn_pool[i].n < kn_pool[best].n))
            best = i;
    if (best >= 0) {
        kn_pool[best].busy = 1;
        kn_pool_idle -= kn_pool[best].n;
        kn_pool_busy += kn_pool[best].n;
        pthread_mutex_unlock(&kn_pool_lock);
        return kn_pool[best].p;
    }
    /* nothing idle is big enough: release the idle buffers first (peak = live set) */
    int empty = -1;
    for (int i = 0; i < KN_POOL_SLOTS; i++) {
        if (kn_pool[i].p && !kn_pool[i].busy) {
            free(kn_pool[i].p);
            kn_pool[i].p = NULL;
        }
        if (!kn_pool[i].p) empty = i;
    }
    kn_pool_idle = 0;
    void *p = kn_scratch_alloc(n);
    if (p && empty >= 0) {
        kn_pool[empty].p = p, kn_pool[empty].n = n, kn_pool[empty].busy = 1;
        kn_pool_busy += n;
    }
    pthread_mutex_unlock(&kn_pool_lock);
    if (!p) zi_err_oom(n, "scratch");
    return p;
}

void kn_scratch_put(void *p) {
    if (!p) return;
    pthread_mutex_lock(&kn_pool_lock);
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p == p) {
            size_t n = kn_pool[i].n;
            kn_pool_busy -= n;
            if (kn_pool_idle + n > (kn_pool_busy > KN_POOL_KEEP_BYTES ? kn_pool_busy : KN_POOL_KEEP_BYTES)) {
                kn_pool[i].p = NULL; /* would keep too much idle */
                kn_pool[i].busy = 0;
                break;
            }
            kn_pool[i].busy = 0;
            kn_pool_idle += n;
            pthread_mutex_unlock(&kn_pool_lock);
            return;
        }
    pthread_mutex_unlock(&kn_pool_lock);
    free(p); /* not pooled, or not kept */
}

void kn_scratch_trim(void) {
    pthread_mutex_lock(&kn_pool_lock);
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p && !kn_pool[i].busy) {
            free(kn_pool[i].p);
            kn_pool[i].p = NULL;
        }
    kn_pool_idle = 0;
    pthread_mutex_unlock(&kn_pool_lock);
}

void kn_scratch_stats(size_t *busy, size_t *idle) {
    pthread_mutex_lock(&kn_pool_lock);
    *busy = kn_pool_busy;
    *idle = kn_pool_idle;
    pthread_mutex_unlock(&kn_pool_lock);
}
