/* preview.c - linear latent -> RGB projection for live previews (see preview.h). */
#include "preview.h"

#include <math.h>

const float zi_preview_flux_factors[16][3] = {
    {-0.0346f, 0.0244f, 0.0681f},  {0.0034f, 0.0210f, 0.0687f},   {0.0275f, -0.0668f, -0.0433f},
    {-0.0174f, 0.0160f, 0.0617f},  {0.0859f, 0.0721f, 0.0329f},   {0.0004f, 0.0383f, 0.0115f},
    {0.0405f, 0.0861f, 0.0915f},   {-0.0236f, -0.0185f, -0.0259f}, {-0.0245f, 0.0250f, 0.1180f},
    {0.1008f, 0.0755f, -0.0421f},  {-0.0515f, 0.0201f, 0.0011f},  {0.0428f, -0.0012f, -0.0036f},
    {0.0817f, 0.0765f, 0.0749f},   {-0.1264f, -0.0522f, -0.1103f}, {-0.0280f, -0.0881f, -0.0499f},
    {-0.1262f, -0.0982f, -0.0778f}};
const float zi_preview_flux_bias[3] = {-0.0329f, -0.0718f, -0.0851f};

void zi_preview_linear(const float *x0, int h, int w, uint8_t *rgb) {
    const int64_t hw = (int64_t)h * w;
    for (int64_t p = 0; p < hw; p++) {
        float v[3] = {zi_preview_flux_bias[0], zi_preview_flux_bias[1], zi_preview_flux_bias[2]};
        for (int k = 0; k < 16; k++) {
            float x = x0[k * hw + p]; /* channel k of latent pixel p */
            v[0] += x * zi_preview_flux_factors[k][0];
            v[1] += x * zi_preview_flux_factors[k][1];
            v[2] += x * zi_preview_flux_factors[k][2];
        }
        for (int c = 0; c < 3; c++) {
            float u = (v[c] + 1.0f) * 0.5f;
            u = u < 0 ? 0 : u > 1 ? 1 : u;
            rgb[p * 3 + c] = (uint8_t)lrintf(u * 255.0f);
        }
    }
}
