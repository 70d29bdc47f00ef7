/* cpu.c - which instruction sets this CPU (and OS) offers, and which kernel path runs.
 *
 * Detection: CPUID leaves 1 and 7 for the feature bits, XGETBV for the register state the OS
 * saves (YMM for AVX2, opmask/ZMM for AVX-512, tile config/data for AMX). AMX also needs a tile
 * palette in CPUID leaf 0x1D (some hypervisors advertise AMX without one) and Linux permission
 * for the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM): if any is missing the AMX path is
 * unavailable and kn_isa_supported says why. Detection runs once (pthread_once); afterwards
 * everything here is read-only.
 *
 * Choice: ZIMAGE_ISA=amx|avx512bf16|avx512|avx2|c forces a path (an error if the CPU lacks it),
 * otherwise the best supported one. The chosen path is per calling thread (kn_set_isa), so
 * tests can run every path the CPU supports. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "../common/error.h"
#include "kernels.h"

typedef struct {
    int avx, avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16, avx512vnni, avx512fp16;
    int amx_tile, amx_bf16, amx_int8;
    int os_ymm, os_zmm, os_tiles;
    int amx_palette, amx_permitted;
    char brand[49];
} kn_cpu_features;

static kn_cpu_features kn_cpu;
static pthread_once_t kn_cpu_once = PTHREAD_ONCE_INIT;
static kn_isa kn_default_isa;     /* ZIMAGE_ISA or the best one (set once by cpu_detect) */
static char kn_default_err[256]; /* why ZIMAGE_ISA was refused ("" if it was not) */

#if defined(__x86_64__)
static uint64_t cpu_xgetbv(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void cpu_detect_features(void);
static void cpu_detect_default(void);
static kn_isa cpu_best(void);

static void cpu_detect(void) {
    cpu_detect_features();
    cpu_detect_default();
}

static void cpu_detect_features(void) {
    kn_cpu_features *f = &kn_cpu;
    memset(f, 0, sizeof *f);
    snprintf(f->brand, sizeof f->brand, "unknown CPU");
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(f->brand, r, 48);
        f->brand[48] = 0;
        char *s = f->brand;
        while (*s == ' ') s++;
        memmove(f->brand, s, strlen(s) + 1);
    }
    unsigned maxleaf = __get_cpuid_max(0, NULL);
    if (maxleaf < 1) return;
    __cpuid(1, a, b, c, d);
    int osxsave = (c >> 27) & 1;
    f->avx = (c >> 28) & 1;
    f->fma = (c >> 12) & 1;
    f->f16c = (c >> 29) & 1;
    if (osxsave) {
        uint64_t xcr0 = cpu_xgetbv();
        f->os_ymm = (xcr0 & 0x6) == 0x6;
        f->os_zmm = (xcr0 & 0xE6) == 0xE6;
        f->os_tiles = (xcr0 & 0x60000) == 0x60000;
    }
    if (maxleaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = (b >> 5) & 1;
        f->avx512f = (b >> 16) & 1;
        f->avx512dq = (b >> 17) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512vnni = (c >> 11) & 1;
        f->avx512fp16 = (d >> 23) & 1;
        f->amx_bf16 = (d >> 22) & 1;
        f->amx_tile = (d >> 24) & 1;
        f->amx_int8 = (d >> 25) & 1;
        unsigned max7 = a;
        if (max7 >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f->avx512bf16 = (a >> 5) & 1;
        }
    }
    if (f->amx_tile && maxleaf >= 0x1D) {
        __cpuid_count(0x1D, 0, a, b, c, d);
        f->amx_palette = a >= 1; /* highest palette id: palette 1 must exist */
    }
#if defined(__linux__)
    if (f->amx_tile && f->os_tiles && f->amx_palette) {
        /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
        f->amx_permitted = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
#endif
#endif
}

static const kn_cpu_features *cpu_get(void) {
    pthread_once(&kn_cpu_once, cpu_detect);
    return &kn_cpu;
}

static const char *const kn_isa_names[KN_ISA_COUNT] = {"c", "avx2", "avx512", "avx512bf16", "amx"};

const char *kn_isa_name(kn_isa isa) { return (unsigned)isa < KN_ISA_COUNT ? kn_isa_names[isa] : "?"; }

int kn_isa_parse(const char *s, kn_isa *out) {
    for (int i = 0; i < KN_ISA_COUNT; i++)
        if (strcmp(s, kn_isa_names[i]) == 0) {
            *out = (kn_isa)i;
            return 0;
        }
    return zi_err("unknown instruction set '%s' (expected amx, avx512bf16, avx512, avx2 or c)", s);
}

/* (no pthread_once here: also called from inside cpu_detect) */
static int cpu_supported(kn_isa isa, const char **why) {
    const kn_cpu_features *f = &kn_cpu;
    const char *w = NULL;
    int avx2 = f->avx && f->avx2 && f->fma && f->f16c && f->os_ymm;
    int avx512 = avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->os_zmm;
    switch (isa) {
    case KN_ISA_C: break;
    case KN_ISA_AVX2:
        if (!avx2) w = "the CPU or OS lacks AVX2/FMA/F16C";
        break;
    case KN_ISA_AVX512:
        if (!avx512) w = "the CPU or OS lacks AVX-512 F/BW/VL/DQ";
        break;
    case KN_ISA_AVX512BF16:
        if (!avx512 || !f->avx512bf16) w = "the CPU lacks AVX512-BF16";
        break;
    case KN_ISA_AMX:
        if (!avx512 || !f->amx_tile || !f->amx_bf16) w = "the CPU lacks AMX-BF16";
        else if (!f->os_tiles) w = "the OS does not enable the AMX tile state (XCR0)";
        else if (!f->amx_palette) w = "CPUID leaf 0x1D lists no tile palette (hypervisor?)";
        else if (!f->amx_permitted) w = "Linux refused the AMX tile data permission (arch_prctl)";
        break;
    default: w = "unknown instruction set";
    }
#if !defined(__x86_64__)
    if (isa != KN_ISA_C) w = "not an x86-64 build";
#endif
    if (why) *why = w;
    return w == NULL;
}

kn_isa kn_isa_best(void) {
    pthread_once(&kn_cpu_once, cpu_detect);
    return cpu_best();
}

int kn_cpu_has_avx512vnni(void) {
    const kn_cpu_features *f = cpu_get();
    return cpu_supported(KN_ISA_AVX512, NULL) && f->avx512vnni;
}

/* AMX-INT8 (CPUID 7 EDX bit 25) on top of everything the amx path needs (tile state, palette,
 * tile data permission) */
int kn_cpu_has_amx_int8(void) {
    const kn_cpu_features *f = cpu_get();
    return cpu_supported(KN_ISA_AMX, NULL) && f->amx_int8;
}

int kn_isa_supported(kn_isa isa, const char **why) {
    pthread_once(&kn_cpu_once, cpu_detect);
    return cpu_supported(isa, why);
}

static kn_isa cpu_best(void) {
    for (int i = KN_ISA_COUNT - 1; i > 0; i--)
        if (cpu_supported((kn_isa)i, NULL)) return (kn_isa)i;
    return KN_ISA_C;
}

/* runs inside pthread_once (after the features): kn_isa_supported must not re-enter it */
static void cpu_detect_default(void) {
    kn_default_isa = cpu_best();
    const char *env = getenv("ZIMAGE_ISA");
    if (!env || !*env) return;
    int found = -1;
    for (int i = 0; i < KN_ISA_COUNT; i++)
        if (strcmp(env, kn_isa_names[i]) == 0) found = i;
    const char *why = NULL;
    if (found < 0)
        snprintf(kn_default_err, sizeof kn_default_err,
                 "ZIMAGE_ISA=%.64s: unknown instruction set (expected amx, avx512bf16, avx512, avx2 or c)", env);
    else if (!cpu_supported((kn_isa)found, &why))
        snprintf(kn_default_err, sizeof kn_default_err, "ZIMAGE_ISA=%.64s: not available on this machine: %s", env, why);
    else
        kn_default_isa = (kn_isa)found;
}

int kn_isa_default(kn_isa *out) {
    pthread_once(&kn_cpu_once, cpu_detect);
    *out = kn_default_isa;
    if (kn_default_err[0]) return zi_err("%s", kn_default_err);
    return 0;
}

/* ---------------------------------------------------------------- per-thread context */

static _Thread_local int kn_tls_threads;      /* 0: all cores */
static _Thread_local int kn_tls_isa = -1;     /* -1: process default */

void kn_set_threads(int n) { kn_tls_threads = n > 0 ? n : 0; }

int kn_get_threads(void) {
#ifdef _OPENMP
    return kn_tls_threads > 0 ? kn_tls_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

void kn_set_isa(kn_isa isa) { kn_tls_isa = (int)isa; }

static _Thread_local int kn_tls_prec; /* kn_precision, default f32 */

void kn_set_precision(kn_precision p) { kn_tls_prec = (int)p; }
kn_precision kn_get_precision(void) { return (kn_precision)kn_tls_prec; }

kn_isa kn_get_isa(void) {
    if (kn_tls_isa >= 0) return (kn_isa)kn_tls_isa;
    pthread_once(&kn_cpu_once, cpu_detect);
    return kn_default_isa; /* an invalid ZIMAGE_ISA is reported by the loader (kn_isa_default) */
}

void kn_cpu_describe(char *buf, size_t n) {
    const kn_cpu_features *f = cpu_get();
    int off = snprintf(buf, n, "CPU: %s\nfeatures:%s%s%s%s%s%s%s%s%s%s%s%s%s\n", f->brand, f->avx2 ? " avx2" : "",
                       f->fma ? " fma" : "", f->f16c ? " f16c" : "", f->avx512f ? " avx512f" : "",
                       f->avx512bw ? " avx512bw" : "", f->avx512vl ? " avx512vl" : "", f->avx512dq ? " avx512dq" : "",
                       f->avx512bf16 ? " avx512_bf16" : "", f->avx512vnni ? " avx512_vnni" : "",
                       f->avx512fp16 ? " avx512_fp16" : "", f->amx_tile ? " amx_tile" : "",
                       f->amx_bf16 ? " amx_bf16" : "", f->amx_int8 ? " amx_int8" : "");
    for (int i = KN_ISA_COUNT - 1; i >= 0 && off > 0 && (size_t)off < n; i--) {
        const char *why;
        int ok = kn_isa_supported((kn_isa)i, &why);
        off += snprintf(buf + off, n - (size_t)off, "  %-11s %s\n", kn_isa_names[i], ok ? "available" : why);
    }
}
