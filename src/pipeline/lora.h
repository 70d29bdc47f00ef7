/* lora.h - LoRA / LoKr adapters on the DiT (diffusers/PEFT, kohya/musubi, ComfyUI, LyCORIS keys).
 *
 * Pipeline position: load time, right after zi_dit_load. Each adapter file's keys are
 * matched to the DiT's weight matrices (kn_mat); dense weights (F32/BF16/F16) get a
 * merged copy W + sum scale_i delta_i computed in float32 and rounded once to the
 * weight's dtype, which replaces the mapped weight (its file pages are dropped);
 * other dtypes (block-quantized) get kn_mat.lora run-time low-rank terms instead.
 *
 * Key formats (see tests/fixtures/README.md "LoRA" for where each comes from):
 *   <prefix><module>.lora_A.weight / .lora_B.weight [/ .alpha]        diffusers, PEFT
 *   lora_unet_<module with . as _>.lora_down.weight / .lora_up.weight / .alpha   kohya, musubi
 *   diffusion_model.<module>.lora_down/up ... with attention.qkv (fused q|k|v rows) and
 *     attention.out (= attention.to_out.0)                            ComfyUI
 *   <module>.lokr_w1 | lokr_w1_a + lokr_w1_b, lokr_w2 | lokr_w2_a + lokr_w2_b, .alpha   LoKr
 * Prefixes stripped: transformer., diffusion_model., model.diffusion_model., base_model.model.,
 * lora_unet_, unet.; "default." adapter names are dropped. Scale: user scale x alpha/rank
 * (alpha absent: 1). LoKr: delta = kron(w1, w2) x alpha/rank when a factor is decomposed. */
#ifndef ZI_LORA_H
#define ZI_LORA_H

#include "../dit/dit.h"
#include "zimage.h"

enum { ZI_LORA_AUTO = 0, ZI_LORA_RUNTIME = 1 };

/* Apply adapters to a loaded DiT. Unmatched keys are an error listing the first few names
 * unless lenient, then they are skipped and described in *warnings (new string or NULL).
 * mode ZI_LORA_RUNTIME forces run-time terms even on dense weights (tests). */
int zi_lora_apply(zi_dit *dit, const zimage_lora *loras, int n, int lenient, int mode, char **warnings);

#endif
