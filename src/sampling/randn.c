/* randn.c - torch.manual_seed(seed); torch.randn(n) on the CPU, float32.
 *
 * torch's CPU generator is MT19937 seeded with init_genrand(seed & 0xffffffff).
 * For float32 tensors with n >= 16 torch runs normal_fill:
 *   1. u[i] = (next_u32() & 0xFFFFFF) * 2^-24 for all n values;
 *   2. every full block of 16 (offsets 0, 16, ...), j = 0..7:
 *        u1 = 1 - d[j], u2 = d[j+8], r = sqrt(-2 ln u1), theta = float(2 pi) * u2,
 *        d[j] = r cos theta, d[j+8] = r sin theta                 (all float32)
 *   3. if n % 16 != 0: 16 fresh uniforms into the last 16 slots, redo step 2 there.
 * For n < 16 torch takes the scalar path: at::normal_distribution<double> per
 * element (53-bit uniforms from two draws, Box-Muller in double, the sin sample
 * cached for the next element), cast to float.
 *
 * torch's AVX2 kernel uses approximate vector log/sin/cos; we use correctly
 * rounded float32 values (double evaluation, one rounding), which the fixtures
 * README measures within 5e-7 of torch. */
#include "randn.h"

#include <fcntl.h>
#include <math.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- MT19937 (Matsumoto & Nishimura), as at::mt19937 ---- */

#define MT_N 624
#define MT_M 397

typedef zi_rng mt19937;

static void mt_seed(mt19937 *mt, uint32_t seed) {
    mt->s[0] = seed;
    for (int i = 1; i < MT_N; i++)
        mt->s[i] = 1812433253u * (mt->s[i - 1] ^ (mt->s[i - 1] >> 30)) + (uint32_t)i;
    mt->idx = MT_N;
}

static void mt_twist(mt19937 *mt) {
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt->s[i] & 0x80000000u) | (mt->s[(i + 1) % MT_N] & 0x7fffffffu);
        mt->s[i] = mt->s[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    mt->idx = 0;
}

static uint32_t mt_next(mt19937 *mt) {
    if (mt->idx >= MT_N) mt_twist(mt);
    uint32_t y = mt->s[mt->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* at::uniform_real_distribution<float>(0, 1): 24 random bits. */
static float mt_uniform_f32(mt19937 *mt) { return (float)(mt_next(mt) & 0xFFFFFFu) * 0x1p-24f; }

/* at::uniform_real_distribution<double>(0, 1): random64() = (first << 32) | second, 53 bits. */
static double mt_uniform_f64(mt19937 *mt) {
    uint64_t hi = mt_next(mt), lo = mt_next(mt);
    uint64_t v = (hi << 32) | lo;
    return (double)(v & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

/* ---- Box-Muller ---- */

/* Correctly rounded float32 log/sin/cos (evaluate in double, round once). */
static float log_f32(float x) { return (float)log((double)x); }
static float sin_f32(float x) { return (float)sin((double)x); }
static float cos_f32(float x) { return (float)cos((double)x); }

/* torch normal_fill_16 with mean 0, std 1: d[0..16) uniforms -> normals. */
static void randn_block16(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j]; /* [0,1) -> (0,1] for the log */
        float u2 = d[j + 8];
        float m2log = -2.0f * log_f32(u1);
        float r = sqrtf(m2log);
        float theta = two_pi * u2;
        float c = cos_f32(theta), s = sin_f32(theta);
        d[j] = r * c;
        d[j + 8] = r * s;
    }
}

/* torch's scalar path for n < 16 (torch 1.13 formula: log(1 - u2), not log1p). */
static void randn_scalar(mt19937 *mt, float *out, int64_t n) {
    int have_cache = 0;
    double cache = 0;
    for (int64_t i = 0; i < n; i++) {
        if (have_cache) {
            out[i] = (float)cache;
            have_cache = 0;
            continue;
        }
        double u1 = mt_uniform_f64(mt);
        double u2 = mt_uniform_f64(mt);
        double r = sqrt(-2.0 * log(1.0 - u2));
        double theta = 2.0 * 3.14159265358979323846 * u1;
        cache = r * sin(theta);
        have_cache = 1;
        out[i] = (float)(r * cos(theta));
    }
}

void zi_rng_seed(zi_rng *r, uint64_t seed) { mt_seed(r, (uint32_t)(seed & 0xffffffffu)); }

void zi_rng_randn(zi_rng *mt, float *out, int64_t n) {
    if (n <= 0) return;
    if (n < 16) {
        randn_scalar(mt, out, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = mt_uniform_f32(mt);
    for (int64_t i = 0; i + 16 <= n; i += 16) randn_block16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16; /* overlaps the last full block: torch recomputes it */
        for (int k = 0; k < 16; k++) tail[k] = mt_uniform_f32(mt);
        randn_block16(tail);
    }
}

void zi_randn(uint64_t seed, float *out, int64_t n) {
    zi_rng r;
    zi_rng_seed(&r, seed);
    zi_rng_randn(&r, out, n);
}

uint64_t zi_seed_random(void) {
    uint32_t v = 0;
    ssize_t got = getrandom(&v, sizeof v, GRND_NONBLOCK);
    if (got == (ssize_t)sizeof v) return v;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, &v, sizeof v);
        close(fd);
        if (r == (ssize_t)sizeof v) return v;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20);
    /* splitmix64 finalizer to spread the bits */
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x & 0xffffffffu;
}
