// The one function that turns model outputs into integer CDFs, and CDF validation.
//
// cdf_from_logits is a pure function of its inputs: the same logits give the same CDF bits
// on every machine, thread count and batch split. Both ends of a SoundSpring link call it,
// so any difference would make decoding fail. The order of operations is normative and
// mirrored exactly by python/soundspring/coding/reference.py:
//
//   for each row of V float32 logits:
//     m      = max over the row (first index on ties = argmax); +inf/NaN refused,
//              -inf allowed (probability 0 -> minimum frequency), all -inf refused
//     x_i    = double(logit_i) - double(m)                 (<= 0)
//     e_i    = det_exp(x_i)                                (see below; exactly 1.0 at argmax)
//     S      = (s_0 + s_1) + (s_2 + s_3), s_j = sum of e_i with i % 4 == j, each summed
//              left to right in double
//     scale  = double(T) / S,  T = 2^precision_bits
//     f_i    = max(1, floor(e_i * scale + 0.5))            (uint32, round to nearest)
//     R      = T - sum(f_i)                                (int64)
//     if R >= 0 or f_argmax + R >= 1: f_argmax += R
//     else: take from the symbols with f_i > 1 in index order (down to 1) until the sum is T
//     cdf    = [0, f_0, f_0 + f_1, ..., T]
//
//   det_exp(x): 0 if x < -700; else k = (x * (1/ln2) + 1.5 * 2^52) - 1.5 * 2^52 (= rint),
//     r = (x - k * LN2_HI) - k * LN2_LO, p = Horner polynomial of exp(r) of degree 12
//     (Taylor coefficients 1/12!, ..., 1/1!, 1), result p * 2^k.
//   All arithmetic is IEEE-754 double with round-to-nearest, no fused multiply-add
//   (built with -ffp-contract=off, no fast-math); no libm function is called.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace soundspring {

/// Deterministic exp for x <= 0 (the normative det_exp above). Exposed for tests.
double det_exp(double x);

/// Quantises `n_rows` rows of `n_symbols` float32 logits (row-major) into integer CDFs
/// of `n_symbols + 1` uint32 entries each (row-major), total 2^precision_bits, every
/// frequency >= 1. Requires 1 <= n_symbols <= 2^precision_bits, precision_bits in [1, 16].
Status cdf_from_logits(const float* logits, size_t n_rows, int n_symbols, int precision_bits,
                       uint32_t* cdfs);

/// Same as cdf_from_logits for one row; `scratch` must hold n_symbols doubles.
Status cdf_row_from_logits(const float* logits, int n_symbols, int precision_bits,
                           double* scratch, uint32_t* cdf);

/// Checks that each of `n_rows` CDF rows starts at 0, is non-decreasing and ends at
/// 2^precision_bits. Returns kInvalidArgument naming the first bad row otherwise.
Status validate_cdfs(const uint32_t* cdfs, size_t n_rows, int n_symbols, int precision_bits);

}  // namespace soundspring
