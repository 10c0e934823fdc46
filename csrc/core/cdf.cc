#include "core/cdf.h"

#include <cstdint>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/lm_kernels.h"

namespace soundspring {
namespace {

#include "core/det_exp_impl.h"

bool is_nan_or_pos_inf(float v) { return !(v <= 3.4028234663852886e+38f); }

}  // namespace

double det_exp(double x) { return x < kExpCutoff ? 0.0 : det_exp_core(x); }

Status cdf_row_from_logits(const float* logits, int n_symbols, int precision_bits,
                           double* scratch, uint32_t* cdf) {
  const int64_t total = int64_t{1} << precision_bits;
  // Max and argmax (first index on ties); +inf and NaN are refused.
  float m = logits[0];
  int arg = 0;
  for (int i = 0; i < n_symbols; ++i) {
    const float v = logits[i];
    if (is_nan_or_pos_inf(v)) {
      return InvalidArgument("logits must be finite or -inf; found " +
                             std::string(v != v ? "NaN" : "+inf") + " at symbol " +
                             std::to_string(i));
    }
    if (v > m) {
      m = v;
      arg = i;
    }
  }
  if (!(m > -3.4028234663852886e+38f)) {
    return InvalidArgument("every logit of a row is -inf: no symbol has probability > 0");
  }
  // The exponentials on the widest vector unit the CPU has (the same bits on every one).
  static const lm::Kernels* const kernels = lm::kernels_for(lm::Isa::kAuto);
  kernels->cdf_exp_row(logits, n_symbols, static_cast<double>(m), scratch);
  // Four interleaved left-to-right partial sums (lane j sums the e_i with i % 4 == j),
  // combined as (s0 + s1) + (s2 + s3): a fixed order that vectorises.
  double lanes[4] = {0.0, 0.0, 0.0, 0.0};
  int i4 = 0;
  for (; i4 + 4 <= n_symbols; i4 += 4) {
    lanes[0] += scratch[i4];
    lanes[1] += scratch[i4 + 1];
    lanes[2] += scratch[i4 + 2];
    lanes[3] += scratch[i4 + 3];
  }
  for (int j = 0; i4 + j < n_symbols; ++j) lanes[j] += scratch[i4 + j];
  const double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  const double scale = static_cast<double>(total) / sum;
  int32_t used = 0;  // <= T + V <= 2^17
  uint32_t* freq = cdf + 1;  // frequencies first, prefix-summed in place below
  for (int i = 0; i < n_symbols; ++i) {
    // e * scale + 0.5 is in [0.5, T + 0.5], so truncation is floor (round to nearest).
    const auto rounded = static_cast<int32_t>(scratch[i] * scale + 0.5);
    const int32_t f = rounded > 0 ? rounded : 1;
    freq[i] = static_cast<uint32_t>(f);
    used += f;
  }
  int64_t residual = total - used;
  if (residual >= 0 || static_cast<int64_t>(freq[arg]) + residual >= 1) {
    freq[arg] = static_cast<uint32_t>(static_cast<int64_t>(freq[arg]) + residual);
  } else {
    for (int i = 0; i < n_symbols && residual < 0; ++i) {
      if (freq[i] > 1) {
        const int64_t take = std::min<int64_t>(static_cast<int64_t>(freq[i]) - 1, -residual);
        freq[i] = static_cast<uint32_t>(static_cast<int64_t>(freq[i]) - take);
        residual += take;
      }
    }
  }
  cdf[0] = 0;
  for (int i = 0; i < n_symbols; ++i) cdf[i + 1] += cdf[i];
  return Status::Ok();
}

Status cdf_from_logits(const float* logits, size_t n_rows, int n_symbols, int precision_bits,
                       uint32_t* cdfs) {
  if (precision_bits < 1 || precision_bits > 16) {
    return InvalidArgument("precision_bits must be in [1, 16], got " + std::to_string(precision_bits));
  }
  if (n_symbols < 1 || n_symbols > (1 << precision_bits)) {
    return InvalidArgument("the alphabet size V = " + std::to_string(n_symbols) +
                           " must be in [1, 2^precision_bits = " +
                           std::to_string(1 << precision_bits) + "]");
  }
  std::vector<double> scratch(static_cast<size_t>(n_symbols));
  const size_t v = static_cast<size_t>(n_symbols);
  for (size_t row = 0; row < n_rows; ++row) {
    Status st = cdf_row_from_logits(logits + row * v, n_symbols, precision_bits, scratch.data(),
                                    cdfs + row * (v + 1));
    if (!st.ok()) return Status(st.code(), "row " + std::to_string(row) + ": " + st.message());
  }
  return Status::Ok();
}

Status validate_cdfs(const uint32_t* cdfs, size_t n_rows, int n_symbols, int precision_bits) {
  if (precision_bits < 1 || precision_bits > 16) {
    return InvalidArgument("precision_bits must be in [1, 16], got " + std::to_string(precision_bits));
  }
  const uint32_t total = 1u << precision_bits;
  const size_t stride = static_cast<size_t>(n_symbols) + 1;
  for (size_t row = 0; row < n_rows; ++row) {
    const uint32_t* c = cdfs + row * stride;
    bool ok = c[0] == 0 && c[n_symbols] == total;
    for (int i = 0; i < n_symbols; ++i) ok &= c[i] <= c[i + 1];
    if (!ok) {
      return InvalidArgument("cdfs row " + std::to_string(row) +
                             " must start at 0, be non-decreasing and end at 2^precision_bits = " +
                             std::to_string(total));
    }
  }
  return Status::Ok();
}

}  // namespace soundspring
