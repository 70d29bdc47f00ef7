/* ukr_impl.h - the register-blocked fp32 microkernel and the A-panel packer shared by the GEMM
 * (gemm_impl.h) and attention (attention_impl.h) templates; needs vec_<isa>.h first.
 *
 * One microkernel call computes an MR x NR tile of C from an MR-row A panel and an NR-column B
 * panel: per k step 2 vector loads of B, MR broadcasts of A and 2*MR FMAs (AVX-512: 14 x 32 with
 * 28 zmm accumulators; AVX2 and generic: 6 x 16 with 12 ymm accumulators). */
#ifndef ZI_UKR_IMPL_H
#define ZI_UKR_IMPL_H

/* Write back an MR x NR accumulator tile (x0: columns 0..VW-1, x1: VW..NR-1) to C rows i < mr,
 * first n columns:  mode 0: C = acc (+ bias), mode 1: C += acc, mode 2: C += acc (+ bias). */
KN_INLINE void mm_tile_store(float *c, int64_t ldc, int mr, int64_t n, int mode, const float *bias, const vf *x0,
                             const vf *x1) {
    int64_t n0 = n < KN_VW ? n : KN_VW, n1 = n - KN_VW < 0 ? 0 : n - KN_VW;
    vf bias0 = v_zero(), bias1 = v_zero();
    if (mode != 1 && bias) {
        bias0 = v_load_n(bias, n0);
        bias1 = v_load_n(bias + KN_VW, n1);
    }
#pragma GCC unroll 16
    for (int i = 0; i < KN_MR; i++) {
        if (i >= mr) break;
        float *ci = c + i * ldc;
        vf r0 = x0[i], r1 = x1[i];
        if (mode != 1) r0 = v_add(r0, bias0), r1 = v_add(r1, bias1);
        if (n >= KN_NR) {
            if (mode != 0) r0 = v_add(v_load(ci), r0), r1 = v_add(v_load(ci + KN_VW), r1);
            v_store(ci, r0);
            v_store(ci + KN_VW, r1);
        } else {
            if (mode != 0) r0 = v_add(v_load_n(ci, n0), r0), r1 = v_add(v_load_n(ci + KN_VW, n1), r1);
            v_store_n(ci, r0, n0);
            v_store_n(ci + KN_VW, r1, n1);
        }
    }
}

/* C[i, 0..NR) for i < mr:  mode 0: C = acc (+ bias), mode 1: C += acc, mode 2: C += acc (+ bias),
 *   acc[i, j] = sum_{k < kc} A(i, k) * B(k, j),  A(i, k) = a[i*a_rs + k*a_ks],  B(k, j) = b[k*ldb + j].
 * Rows i in [mr, MR) of A must be readable (packed panels are zero-padded there); their results
 * are dropped. Only the first n (<= NR) columns are stored; NR floats per B row must be
 * readable. The sum over k is sequential (deterministic). */
KN_INLINE void mm_ukr(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks, const float *b, int64_t ldb, float *c,
                      int64_t ldc, int mr, int64_t n, int mode, const float *bias) {
    vf x0[KN_MR], x1[KN_MR];
    /* the C tile is usually far away (L3/DRAM): start fetching it now, used after the k loop */
    for (int i = 0; i < mr; i++) {
        v_prefetch(c + i * ldc);
        v_prefetch(c + i * ldc + KN_VW);
    }
#pragma GCC unroll 16
    for (int i = 0; i < KN_MR; i++) x0[i] = x1[i] = v_zero();
    for (int64_t k = 0; k < kc; k++) {
        vf b0 = v_load(b), b1 = v_load(b + KN_VW);
#pragma GCC unroll 16
        for (int i = 0; i < KN_MR; i++) {
            vf av = v_set1(a[i * a_rs]);
            x0[i] = v_fma(av, b0, x0[i]);
            x1[i] = v_fma(av, b1, x1[i]);
        }
        a += a_ks;
        b += ldb;
    }
    mm_tile_store(c, ldc, mr, n, mode, bias, x0, x1);
}

/* Pack up to MR rows into one MR-row k-major panel (the microkernel's A operand, a_rs = 1,
 * a_ks = MR): dst[k*MR + i] = src[i*ld + k] for i < nrows (0 for nrows <= i < MR), k < kc.
 * rb: round the values to bfloat16 (the bf16 precision mode). */
KN_INLINE void mm_pack_panel(float *dst, const float *src, int64_t ld, int64_t nrows, int64_t kc, int rb) {
    for (int r0 = 0; r0 < KN_MR; r0 += KN_VW) /* one group when MR <= VW (AVX2, AVX-512) */
        for (int64_t k = 0; k < kc; k += KN_VW) {
            int64_t kk = kc - k < KN_VW ? kc - k : KN_VW;
            vf r[KN_VW];
            for (int i = 0; i < KN_VW; i++) r[i] = r0 + i < nrows ? v_load_n(src + (r0 + i) * ld + k, kk) : v_zero();
            if (rb)
                for (int i = 0; i < KN_VW; i++) r[i] = v_round_bf16(r[i]);
            v_transpose(r);
            for (int64_t q = 0; q < kk; q++) v_store_n(dst + (k + q) * KN_MR + r0, r[q], KN_MR - r0);
        }
}

#endif
