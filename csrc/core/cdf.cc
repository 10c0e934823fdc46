#include "core/cdf.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace soundspring {
namespace {

constexpr double kInvLn2 = 1.44269504088896338700e+00;
constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3FE62E42FEE00000: k * hi is exact
constexpr double kLn2Lo = 1.90821492927058770002e-10;  // 0x3DEA39EF35793C76
constexpr double kExpCutoff = -700.0;

// 1/n! for n = 12 down to 0, for Horner's scheme.
constexpr double kInvFact[13] = {
    1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
    1.0 / 5040.0,      1.0 / 720.0,      1.0 / 120.0,     1.0 / 24.0,     1.0 / 6.0,
    1.0 / 2.0,         1.0,              1.0};

// floor() for |y| < 2^62 without libm: truncate, then step down for negative fractions.
inline double floor_exact(double y) {
  const double t = static_cast<double>(static_cast<int64_t>(y));
  return t > y ? t - 1.0 : t;
}

// 2^k as a double for k in [-1022, 1023] by building the exponent bits.
inline double pow2(int64_t k) {
  const uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

bool is_nan_or_pos_inf(float v) { return !(v <= 3.4028234663852886e+38f); }

}  // namespace

double det_exp(double x) {
  if (x < kExpCutoff) return 0.0;
  const double k = floor_exact(x * kInvLn2 + 0.5);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  double p = kInvFact[0];
  for (int i = 1; i < 13; ++i) p = p * r + kInvFact[i];
  return p * pow2(static_cast<int64_t>(k));
}

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
  const double md = static_cast<double>(m);
  for (int i = 0; i < n_symbols; ++i) scratch[i] = det_exp(static_cast<double>(logits[i]) - md);
  double sum = 0.0;
  for (int i = 0; i < n_symbols; ++i) sum += scratch[i];
  const double scale = static_cast<double>(total) / sum;
  int64_t used = 0;
  uint32_t* freq = cdf + 1;  // frequencies first, prefix-summed in place below
  for (int i = 0; i < n_symbols; ++i) {
    // e * scale + 0.5 is in [0.5, T + 0.5], so truncation is floor (round to nearest).
    const auto rounded = static_cast<uint32_t>(static_cast<int64_t>(scratch[i] * scale + 0.5));
    const uint32_t f = rounded > 0 ? rounded : 1u;
    freq[i] = f;
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
