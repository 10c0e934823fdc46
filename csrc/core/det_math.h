// Deterministic float32 arithmetic of the SpringLM engine, shared by the CPU and CUDA builds.
//
// Every function here is a fixed sequence of IEEE-754 binary32 additions, multiplications,
// divisions and square roots, each correctly rounded (round to nearest even), so it gives
// the same bits on every conforming machine:
//   - host code is compiled with -ffp-contract=off and without fast-math (no FMA
//     contraction, no reassociation; see cmake/SoundspringWarnings.cmake);
//   - device code calls the explicitly rounded intrinsics __fadd_rn / __fmul_rn /
//     __fdiv_rn / __fsqrt_rn, which nvcc never fuses, and is also built with --fmad=false.
// No libm function is called: det_expf, det_erff and det_rsqrtf are defined below.
//
// Reduction rule (normative for the whole engine): every sum has one order fixed by its
// length alone. Matrix products (lm_kernels.h) add partial sums of 16 inputs; the sums
// here (dot products of Dh, LayerNorm moments, softmax totals) are left-to-right float32
// accumulations with one accumulator that starts at +0.0f. Vector units and GPU threads
// parallelise only across independent outputs (output columns, frames, heads), never
// within one sum, so results do not depend on the SIMD width, the thread count or how
// rows are batched.
//
// SOUNDSPRING_HD marks every function __host__ __device__ under nvcc and is empty for the
// host compiler. Functions have internal linkage (static inline): a translation unit
// compiled with -mavx512f can never export an AVX-512 copy that the linker would pick for
// code running on a machine without it.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SOUNDSPRING_HD __host__ __device__
#else
#define SOUNDSPRING_HD
#endif

#define SOUNDSPRING_DET static inline SOUNDSPRING_HD

namespace soundspring::det {

// ---- correctly rounded primitives ------------------------------------------------------

SOUNDSPRING_DET float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

SOUNDSPRING_DET float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

SOUNDSPRING_DET float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

SOUNDSPRING_DET float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

/// Correctly rounded square root (IEEE sqrt; x86 sqrtss, CUDA __fsqrt_rn).
SOUNDSPRING_DET float sqrt_rn(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return __builtin_sqrtf(x);
#endif
}

SOUNDSPRING_DET float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

/// The float32 value of an IEEE binary16 bit pattern (exact: every half is a float).
/// Matches the F16C / AVX-512 vcvtph2ps conversion bit for bit.
SOUNDSPRING_DET float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float32
    const float v = mul(static_cast<float>(mant), bits_to_float(0x33800000u));
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// ---- elementary functions ----------------------------------------------------------------

/// 1 / sqrt(x): one correctly rounded square root, then one correctly rounded division.
SOUNDSPRING_DET float det_rsqrtf(float x) { return div(1.0f, sqrt_rn(x)); }

/// exp(x) in float32, deterministic. Cody-Waite reduction x = k ln2 + r (k = rint(x / ln2)
/// by the 1.5 * 2^23 magic addition; ln2 split so that k * kLn2Hi is exact for |k| <= 128),
/// the Cephes degree-7 polynomial of exp(r) on [-ln2/2, ln2/2] (about 1 ulp), then an
/// exact multiplication by 2^k. Returns 0 for x <= -87 (exp(-87) = 1.6e-38, below every use:
/// softmax weights and the erf tail), +inf for x > 88.5, and NaN for NaN.
SOUNDSPRING_DET float det_expf(float x) {
  if (x != x) return x;
  if (x <= -87.0f) return 0.0f;
  if (x > 88.5f) return bits_to_float(0x7F800000u);
  const float kLog2e = 1.44269504088896341f;
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float kLn2Hi = 0.693359375f;      // 355 / 512, 9 significant bits
  const float kLn2Lo = -2.12194440e-4f;   // ln2 - kLn2Hi
  const float k = sub(add(mul(x, kLog2e), kMagic), kMagic);
  const float r = sub(sub(x, mul(k, kLn2Hi)), mul(k, kLn2Lo));
  const float z = mul(r, r);
  float p = 1.9875691500e-4f;
  p = add(mul(p, r), 1.3981999507e-3f);
  p = add(mul(p, r), 8.3334519073e-3f);
  p = add(mul(p, r), 4.1665795894e-2f);
  p = add(mul(p, r), 1.6666665459e-1f);
  p = add(mul(p, r), 5.0000001201e-1f);
  const float y = add(add(mul(p, z), r), 1.0f);
  // k in [-126, 128]; 2^k as a float when k <= 127, else 2^127 twice (exact either way).
  const int ki = static_cast<int>(k);
  if (ki > 127) return mul(mul(y, bits_to_float(0x7F000000u)), 2.0f);
  return mul(y, bits_to_float(static_cast<uint32_t>(ki + 127) << 23));
}

/// erf(x) in float32, deterministic: Abramowitz & Stegun 7.1.26,
/// erf(|x|) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2), t = 1 / (1 + p |x|),
/// odd in x. Truncation error at most 1.5e-7 absolute (one float32 ulp of 1), plus rounding.
SOUNDSPRING_DET float det_erff(float x) {
  const float ax = x < 0.0f ? -x : x;
  if (!(ax < 10.0f)) return x != x ? x : (x < 0.0f ? -1.0f : 1.0f);
  const float t = div(1.0f, add(1.0f, mul(0.3275911f, ax)));
  float poly = 1.061405429f;
  poly = add(mul(poly, t), -1.453152027f);
  poly = add(mul(poly, t), 1.421413741f);
  poly = add(mul(poly, t), -0.284496736f);
  poly = add(mul(poly, t), 0.254829592f);
  const float e = det_expf(-mul(ax, ax));
  const float y = sub(1.0f, mul(mul(poly, t), e));
  return x < 0.0f ? -y : y;
}

/// The exact (erf) GELU of torch.nn.functional.gelu: 0.5 x (1 + erf(x / sqrt 2)).
SOUNDSPRING_DET float det_gelu(float x) {
  const float kInvSqrt2 = 0.707106781186547524f;
  return mul(mul(0.5f, x), add(1.0f, det_erff(mul(x, kInvSqrt2))));
}

// ---- row operations (one fixed order each) -----------------------------------------------

/// Left-to-right dot product of n floats (the reduction rule above).
SOUNDSPRING_DET float dot(const float* a, const float* b, int n) {
  float acc = 0.0f;
  for (int i = 0; i < n; ++i) acc = add(acc, mul(a[i], b[i]));
  return acc;
}

/// LayerNorm of one row of n floats (biased variance, like torch.nn.LayerNorm):
/// mean = sum(x) / n; var = sum((x - mean)^2) / n; y = ((x - mean) * rsqrt(var + eps)) * g + b.
SOUNDSPRING_DET void layer_norm_row(const float* x, int n, const float* gamma, const float* beta,
                                    float eps, float* y) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum = add(sum, x[i]);
  const float mean = div(sum, static_cast<float>(n));
  float sq = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float d = sub(x[i], mean);
    sq = add(sq, mul(d, d));
  }
  const float rstd = det_rsqrtf(add(div(sq, static_cast<float>(n)), eps));
  for (int i = 0; i < n; ++i) y[i] = add(mul(mul(sub(x[i], mean), rstd), gamma[i]), beta[i]);
}

/// In-place softmax of n >= 1 finite scores: m = max (first on ties), e_j = exp(s_j - m),
/// S = sum e_j left to right, p_j = e_j / S.
SOUNDSPRING_DET void softmax_row(float* s, int n) {
  float m = s[0];
  for (int j = 1; j < n; ++j) m = s[j] > m ? s[j] : m;
  float total = 0.0f;
  for (int j = 0; j < n; ++j) {
    s[j] = det_expf(sub(s[j], m));
    total = add(total, s[j]);
  }
  for (int j = 0; j < n; ++j) s[j] = div(s[j], total);
}

}  // namespace soundspring::det
