// The element-wise activations of the engine's kernels (lm_kernels.h: elu, gelu), written
// once over GCC/Clang vector extensions and compiled in each lm_kernels_<isa>.cc with that
// ISA's flags, so the same source becomes SSE2, AVX2 or AVX-512 code.
//
// Each lane runs exactly det_math.h's scalar sequence (det_expf, det_erff, det_gelu): the
// same correctly rounded operations in the same order, with the scalar branches as lane
// selects (every lane computes the main path on a clamped input, and the special values
// of the scalar code are selected over it). So every level, and the scalar tail that
// finishes a length that is not a whole number of vectors, gives det_math.h's bits.
//
// Included inside an anonymous namespace after the includer has defined kActLanes, ActF
// (kActLanes floats) and ActI (kActLanes int32) as vector-extension types and included
// <cstring>, <cstdint> and core/det_math.h.
#pragma once

inline ActF act_splat(float f) {
  ActF v;
  for (int i = 0; i < kActLanes; ++i) v[i] = f;
  return v;
}

inline ActI act_splat_i(int32_t k) {
  ActI v;
  for (int i = 0; i < kActLanes; ++i) v[i] = k;
  return v;
}

inline ActF act_load(const float* p) {
  ActF v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void act_store(float* p, ActF v) { std::memcpy(p, &v, sizeof v); }

inline ActF act_select(ActI mask, ActF a, ActF b) { return mask ? a : b; }

// det_expf lane by lane.
inline ActF act_exp(ActF x) {
  const ActI is_nan = x != x;
  const ActI under = x <= act_splat(-87.0f);
  const ActI over = x > act_splat(88.5f);
  // The main path on an input inside [-87, 88.5] (NaN lanes take 0): identical to x on
  // every lane that keeps the main path's result.
  ActF xc = act_select(under, act_splat(-87.0f), x);
  xc = act_select(over, act_splat(88.5f), xc);
  xc = act_select(is_nan, act_splat(0.0f), xc);
  const ActF magic = act_splat(12582912.0f);
  const ActF k = ((xc * act_splat(1.44269504088896341f)) + magic) - magic;
  const ActF r = (xc - k * act_splat(0.693359375f)) - k * act_splat(-2.12194440e-4f);
  const ActF z = r * r;
  ActF p = act_splat(1.9875691500e-4f);
  p = p * r + act_splat(1.3981999507e-3f);
  p = p * r + act_splat(8.3334519073e-3f);
  p = p * r + act_splat(4.1665795894e-2f);
  p = p * r + act_splat(1.6666665459e-1f);
  p = p * r + act_splat(5.0000001201e-1f);
  const ActF y = (p * z + r) + act_splat(1.0f);
  const ActI ki = __builtin_convertvector(k, ActI);
  const ActI big = ki > act_splat_i(127);
  const ActI kc = big ? act_splat_i(127) : ki;
  const ActI scale_bits = (kc + act_splat_i(127)) << 23;
  ActF scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  ActF out = y * scale;
  out = act_select(big, out * act_splat(2.0f), out);
  out = act_select(under, act_splat(0.0f), out);
  out = act_select(over, act_splat(det::bits_to_float(0x7F800000u)), out);
  return act_select(is_nan, x, out);
}

// det_gelu lane by lane (det_erff inside).
inline ActF act_gelu(ActF x) {
  const ActF zero = act_splat(0.0f), one = act_splat(1.0f);
  const ActF xs = x * act_splat(0.707106781186547524f);
  const ActI xs_neg = xs < zero;
  const ActF ax = act_select(xs_neg, -xs, xs);
  const ActI in_range = ax < act_splat(10.0f);
  const ActF axc = act_select(in_range, ax, zero);
  const ActF t = one / (one + act_splat(0.3275911f) * axc);
  ActF poly = act_splat(1.061405429f);
  poly = poly * t + act_splat(-1.453152027f);
  poly = poly * t + act_splat(1.421413741f);
  poly = poly * t + act_splat(-0.284496736f);
  poly = poly * t + act_splat(0.254829592f);
  const ActF e = act_exp(-(axc * axc));
  const ActF y = one - (poly * t) * e;
  ActF erf = act_select(xs_neg, -y, y);
  const ActF sign = act_select(xs_neg, act_splat(-1.0f), one);
  erf = act_select(in_range, erf, act_select(xs != xs, xs, sign));
  return (act_splat(0.5f) * x) * (one + erf);
}

inline void act_elu(const float* x, float* y, size_t n) {
  size_t i = 0;
  const size_t lanes = static_cast<size_t>(kActLanes);
  for (; i + lanes <= n; i += lanes) {
    const ActF v = act_load(x + i);
    act_store(y + i, act_select(v > act_splat(0.0f), v, act_exp(v) - act_splat(1.0f)));
  }
  for (; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : det::sub(det::det_expf(x[i]), 1.0f);
}

inline void act_gelu_n(const float* x, float* y, size_t n) {
  size_t i = 0;
  const size_t lanes = static_cast<size_t>(kActLanes);
  for (; i + lanes <= n; i += lanes) act_store(y + i, act_gelu(act_load(x + i)));
  for (; i < n; ++i) y[i] = det::det_gelu(x[i]);
}
