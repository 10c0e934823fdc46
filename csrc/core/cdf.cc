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

constexpr double kRoundMagic = 6755399441055744.0;  // 1.5 * 2^52

// Branch-free det_exp for x >= kExpCutoff (callers clamp and mask), written so that the
// compiler vectorises it. k = rint(x / ln2) by the magic-number addition (exact IEEE
// round-half-even; the low mantissa bits of x * (1/ln2) + 1.5 * 2^52 are k itself), and
// p * 2^k by adding k to the exponent field of p, exact because p * 2^k stays normal
// (k >= -1010, p in [0.7, 1.5]).
inline double det_exp_core(double x) {
  const double t = x * kInvLn2 + kRoundMagic;
  const double k = t - kRoundMagic;
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  // Horner's scheme, written out so that the loop over symbols vectorises.
  double p = kInvFact[0];
  p = p * r + kInvFact[1];
  p = p * r + kInvFact[2];
  p = p * r + kInvFact[3];
  p = p * r + kInvFact[4];
  p = p * r + kInvFact[5];
  p = p * r + kInvFact[6];
  p = p * r + kInvFact[7];
  p = p * r + kInvFact[8];
  p = p * r + kInvFact[9];
  p = p * r + kInvFact[10];
  p = p * r + kInvFact[11];
  p = p * r + kInvFact[12];
  int64_t tbits, magic_bits, pbits;
  const double magic = kRoundMagic;
  std::memcpy(&tbits, &t, sizeof t);
  std::memcpy(&magic_bits, &magic, sizeof magic);
  std::memcpy(&pbits, &p, sizeof p);
  pbits += static_cast<int64_t>(static_cast<uint64_t>(tbits - magic_bits) << 52);
  std::memcpy(&p, &pbits, sizeof p);
  return p;
}

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
  const double md = static_cast<double>(m);
  for (int i = 0; i < n_symbols; ++i) {
    const double x = static_cast<double>(logits[i]) - md;
    const double e = det_exp_core(x < kExpCutoff ? kExpCutoff : x);
    scratch[i] = x < kExpCutoff ? 0.0 : e;
  }
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
