/* lora.h - LoRA / LoKr / LoHa adapters on the DiT and the Qwen3 text encoder (diffusers/PEFT,
 * kohya/musubi, ComfyUI, LyCORIS keys).
 *
 * Pipeline position: load time, right after zi_dit_load (DiT), and right after each
 * zi_qwen3_load (text encoder; it is loaded per prompt and released before the DiT runs).
 * Each adapter file's keys are matched to the models' weight matrices (kn_mat).
 * DiT: dense weights (F32/BF16/F16) get a merged copy W + sum scale_i delta_i computed in
 * float32 and rounded once to the weight's dtype, which replaces the mapped weight (its
 * file pages are dropped); other dtypes (block-quantized, scaled fp8) get kn_mat.lora
 * run-time low-rank terms x.A^T.B^T instead. A LoKr delta kron(w1, w2) is run at run time
 * in the low-rank form kron(U1, U2) . kron(V1, V2) (w = U V: the given lokr_*_a/_b factors,
 * else w with an identity on its smaller side), a LoHa one in its Khatri-Rao form; where that
 * form would be larger than a dense f32 delta, the weight is dequantized and merged into an F32
 * copy instead.
 * Text encoder: run-time terms on every dtype (ZI_LORA_TE_MERGE merges dense ones): it is
 * reloaded for every prompt and runs on few tokens, so merging would cost a pass over all
 * its weights and a second copy per generation, while the terms cost rank/width of a matmul.
 *
 * Key formats (see tests/fixtures/README.md "LoRA" for where each comes from):
 *   <prefix><module>.lora_A.weight / .lora_B.weight [/ .alpha]        diffusers, PEFT
 *   lora_unet_<module with . as _>.lora_down.weight / .lora_up.weight / .alpha   kohya, musubi
 *   diffusion_model.<module>.lora_down/up ... with attention.qkv (fused q|k|v rows) and
 *     attention.out (= attention.to_out.0)                            ComfyUI
 *   <module>.lokr_w1 | lokr_w1_a + lokr_w1_b, lokr_w2 | lokr_w2_a + lokr_w2_b, .alpha   LoKr
 *   <module>.hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b, .alpha   LoHa (hada_t1/t2, Tucker: conv only, refused)
 *   lycoris_<module with . as _>.<any of the above>   LyCORIS' own (kohya-style) names
 *   lora_te_<layers_N_self_attn_q_proj ...> (kohya sd-scripts, ComfyUI; "model_" after the prefix
 *     allowed), text_encoder.layers.N.<proj>.lora_A/B (diffusers/PEFT), text_encoders.<name>.
 *     transformer.model.layers.N.<proj> (ComfyUI), or bare layers.N.self_attn.q_proj (raw PEFT)
 *     for the text encoder; keys of its last layer are accepted and have no effect (it does
 *     not reach hidden_states[-2]).
 * Prefixes stripped: transformer., diffusion_model., model.diffusion_model., base_model.model.,
 * lora_unet_, unet., lycoris_; "default." adapter names are dropped. Scale: user scale x alpha/rank
 * (alpha absent: 1). LoKr: delta = kron(w1, w2) x alpha/rank when a factor is decomposed.
 * LoHa: delta = (w1_a w1_b) * (w2_a w2_b) elementwise x alpha/r, r = rows of hada_w1_b; run-time
 * form: one low-rank term of rank r r2 (Khatri-Rao products of the factors). */
#ifndef ZI_LORA_H
#define ZI_LORA_H

#include "../dit/dit.h"
#include "../text/qwen3.h"
#include "zimage.h"

/* mode bits: ZI_LORA_RUNTIME: run-time terms on every DiT weight, dense ones included (tests);
 * ZI_LORA_TE_MERGE: merge into dense text-encoder weights instead of run-time terms;
 * ZI_LORA_TE_ELSEWHERE: (messages only) the text encoder's modules were checked in another call. */
enum { ZI_LORA_AUTO = 0, ZI_LORA_RUNTIME = 1, ZI_LORA_TE_MERGE = 2, ZI_LORA_TE_ELSEWHERE = 4 };

/* Apply adapters to a loaded DiT and/or text encoder (either may be NULL: tensors for a model
 * not given are then skipped without a word; names that are no adapter tensor at all are
 * reported only when the DiT is given). The pipeline makes two calls, text encoder first, so
 * the two models are never mapped together. Unmatched keys are an error listing the first
 * few names unless lenient, then they are skipped and described in *warnings (new string or
 * NULL). *te_modules (may be NULL): modules that target the text encoder. */
int zi_lora_apply(zi_dit *dit, zi_qwen3 *te, const zimage_lora *loras, int n, int lenient, int mode, char **warnings,
                  int *te_modules);

#endif
