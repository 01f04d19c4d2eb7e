#pragma once
// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh: "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", arXiv:2210.17323), written from the paper's Algorithm 1:
// with H = 2 X^T X over the layer's calibration inputs X (plus damping of 1% of the mean diagonal),
// the columns of W are quantized one at a time and each column's error, divided by the diagonal of
// the upper Cholesky factor U of H^-1, is spread over the not yet quantized columns through U's
// row; updates beyond the current block of 128 columns are applied lazily, once per block.
// act_order ("desc_act") quantizes the columns by descending diag(H) and records each column's
// group in g_idx.
//
// Rows of W are independent under this procedure (U is shared), so the work is split by rows.

#include <atomic>
#include <cstdint>

#include "cpu/thread_pool.h"
#include "quantize/quant_format.h"

namespace quire::quantize {

struct GptqOptions {
    double damp = 0.01;    // fraction of the mean diagonal of H added to the diagonal
    bool act_order = false;
    int64_t block = 128;   // lazy-update block (made a multiple or divisor of the group size)
    const std::atomic<bool>* cancel = nullptr;  // checked between columns and blocks
};

// h: [in, in], the sum of x x^T over the calibration rows (any positive multiple of X^T X gives the
// same result). w: [out, in]. Neither is modified.
Result<QuantizedMatrix> gptq_quantize(cpu::ThreadPool& pool, const float* w, int64_t out, int64_t in, const float* h,
                                      const QuantSpec& spec, const GptqOptions& options);

// h += X^T X for x [rows, cols].
void accumulate_xtx(cpu::ThreadPool& pool, const float* x, int64_t rows, int64_t cols, float* h);

// ||W X^T - Q X^T||^2 / ||W X^T||^2 over the calibration rows x [rows, in].
double calibration_loss(cpu::ThreadPool& pool, const float* w, const QuantizedMatrix& q, const float* x, int64_t rows);

}  // namespace quire::quantize
