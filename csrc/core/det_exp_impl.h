// cdf.h's normative det_exp, shared by cdf.cc and every lm_kernels_<isa>.cc (which compile
// it with their ISA's flags: the same IEEE double operations, vectorised wider), and the
// loop that applies it to one row of logits (lm_kernels.h cdf_exp_row).
//
// Included inside an anonymous namespace after <cstdint> and <cstring>.
#pragma once

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

// scratch[i] = det_exp(double(logits[i]) - m) for i < n, branch-free so that it vectorises.
inline void cdf_exp_row_impl(const float* logits, int n, double m, double* scratch) {
  for (int i = 0; i < n; ++i) {
    const double x = static_cast<double>(logits[i]) - m;
    const double e = det_exp_core(x < kExpCutoff ? kExpCutoff : x);
    scratch[i] = x < kExpCutoff ? 0.0 : e;
  }
}
