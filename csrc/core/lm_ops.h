// The SpringLM engine's per-output computations, shared by the CPU engine (lm_engine.cc)
// and the CUDA kernels (csrc/cuda/): each function computes one output (an embedding row,
// one matrix-product element, one attention query of one head) in det_math.h's fixed
// order, so the CPU tests run the very code the GPU runs. All SOUNDSPRING_HD, internal
// linkage, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/det_math.h"

namespace soundspring::det {

/// Embedding of frame f: row[0 .. dim) = sum over levels 0 .. n_codebooks-1, in order, of
/// embed[(level vocab + id) dim ...], where id is tok[level n_frames + f] for levels below
/// `shown` and mask_upper above. tok is [n_levels, n_frames] with shown <= n_levels.
SOUNDSPRING_DET void embed_frame(const float* embed, int vocab, int n_codebooks, int dim,
                                 const int64_t* tok, int n_frames, int f, int shown,
                                 int64_t mask_upper, float* row) {
  for (int i = 0; i < dim; ++i) row[i] = 0.0f;
  for (int level = 0; level < n_codebooks; ++level) {
    const int64_t id = level < shown ? tok[static_cast<size_t>(level) * static_cast<size_t>(n_frames) +
                                           static_cast<size_t>(f)]
                                     : mask_upper;
    const float* e = embed + (static_cast<size_t>(level) * static_cast<size_t>(vocab) +
                              static_cast<size_t>(id)) * static_cast<size_t>(dim);
    for (int i = 0; i < dim; ++i) row[i] = add(row[i], e[i]);
  }
}

/// One element of lm_kernels.h's matmul_bias: the blocked sum over i of x_row[i] W(i, c)
/// (partial sums of `block` inputs, each left to right from +0, added left to right from
/// +0) plus bias_c, W in column panels of `panel` columns.
SOUNDSPRING_DET float matmul_bias_element(const float* x_row, const float* w_panels, size_t in,
                                          size_t c, size_t panel, size_t block, float bias_c) {
  const float* w = w_panels + (c / panel) * in * panel + c % panel;
  float total = 0.0f;
  for (size_t i0 = 0; i0 < in; i0 += block) {
    const size_t i1 = i0 + block < in ? i0 + block : in;
    float part = 0.0f;
    for (size_t i = i0; i < i1; ++i) part = add(part, mul(x_row[i], w[i * panel]));
    total = add(total, part);
  }
  return add(total, bias_c);
}

/// Softmax attention of one query of one head over n_keys >= 1 keys:
///   s_j = (q . k_j) * scale + rel[clamp(q_frame - k_frames[j], -M, M) + M],
/// rel = rel_mem for a memory key (k_is_memory[j]) else rel_self (both the [2M + 1] row of
/// this layer and head); p = softmax_row(s); out[e] = sum over j, in order, of p_j v_j[e].
/// k_rows / v_rows point at each key's D-wide row; the head's slice starts at head_offset.
/// scores holds n_keys floats of scratch.
SOUNDSPRING_DET void attend_query(const float* q, const float* const* k_rows,
                                  const float* const* v_rows, const int64_t* k_frames,
                                  const uint8_t* k_is_memory, int n_keys, size_t head_offset,
                                  int dh, float scale, int64_t q_frame, const float* rel_self,
                                  const float* rel_mem, int64_t max_dist, float* scores,
                                  float* out) {
  for (int j = 0; j < n_keys; ++j) {
    const float s = dot(q, k_rows[j] + head_offset, dh);
    int64_t dist = q_frame - k_frames[j];
    dist = dist < -max_dist ? -max_dist : (dist > max_dist ? max_dist : dist);
    const float* rel = k_is_memory[j] ? rel_mem : rel_self;
    scores[j] = add(mul(s, scale), rel[dist + max_dist]);
  }
  softmax_row(scores, n_keys);
  for (int e = 0; e < dh; ++e) out[e] = 0.0f;
  for (int j = 0; j < n_keys; ++j) {
    const float p = scores[j];
    const float* v = v_rows[j] + head_offset;
    for (int e = 0; e < dh; ++e) out[e] = add(out[e], mul(p, v[e]));
  }
}

}  // namespace soundspring::det
