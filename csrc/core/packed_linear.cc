#include "core/packed_linear.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "core/det_math.h"

namespace soundspring::lm {

size_t padded_columns(int n) {
  const size_t a = static_cast<size_t>(kColumnAlign);
  return (static_cast<size_t>(n) + a - 1) / a * a;
}

size_t panel_offset(size_t in, size_t i, size_t c) {
  const size_t a = static_cast<size_t>(kColumnAlign);
  return (c / a) * in * a + i * a + c % a;
}

bool half_exact(float f, uint16_t* out) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  const uint32_t sign = (b >> 16) & 0x8000u, exp = (b >> 23) & 0xFFu, mant = b & 0x7FFFFFu;
  uint32_t h;
  if (exp == 0xFFu) return false;
  if (exp == 0) {
    if (mant != 0) return false;  // a float32 subnormal is below every half
    h = sign;
  } else {
    const int e = static_cast<int>(exp) - 127;
    if (e > 15 || e < -24) return false;
    if (e >= -14) {
      if (mant & 0x1FFFu) return false;
      h = sign | (static_cast<uint32_t>(e + 15) << 10) | (mant >> 13);
    } else {  // a half subnormal: (1.mant) 2^e = m 2^-24 with m = (2^23 + mant) 2^(e + 1)
      const uint32_t full = 0x800000u | mant;
      const int shift = -(e + 1);
      if (full & ((1u << shift) - 1u)) return false;
      h = sign | (full >> shift);
    }
  }
  *out = static_cast<uint16_t>(h);
  return det::half_to_float(*out) == f;  // by construction; kept as the definition
}

bool to_half(const std::vector<float>& w, std::vector<uint16_t>* w16) {
  w16->resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    if (!half_exact(w[i], &(*w16)[i])) {
      w16->clear();
      return false;
    }
  }
  return true;
}

int int8_exponent(float max_abs) {
  if (max_abs == 0.0f) return 0;
  int k = 0;
  const float m = std::frexp(max_abs, &k);  // max_abs = m 2^k, m in [0.5, 1): exact
  // kMax 2^(k - 7) = (kMax / 128) 2^k covers m 2^k iff m <= kMax / 128, and kMax 2^(k - 6)
  // always does (kMax / 64 > 1 > m); kMax 2^(k - 8) < 2^(k - 1) <= max_abs never does.
  const float top = static_cast<float>(kInt8MaxMagnitude) / 128.0f;  // exact: 127 / 2^7
  const int e = m <= top ? k - 7 : k - 6;
  return e < kInt8MinExponent ? kInt8MinExponent : e;
}

bool int8_exact(float f, int e, int8_t* q) {
  if (!std::isfinite(f)) return false;
  const double t = std::ldexp(static_cast<double>(f), -e);  // exact: f 2^-e fits a double
  if (t != std::trunc(t) || std::fabs(t) > static_cast<double>(kInt8MaxMagnitude)) return false;
  *q = static_cast<int8_t>(t);
  return std::ldexp(static_cast<float>(*q), e) == f;  // by construction; kept as the definition
}

bool to_int8(const std::vector<float>& w, size_t in, size_t ld, std::vector<int8_t>* q,
             std::vector<float>* scale) {
  const size_t a = static_cast<size_t>(kColumnAlign);
  q->assign(w.size(), 0);
  scale->assign(ld, 1.0f);
  std::vector<float> max_abs(ld, 0.0f);
  bool finite = w.size() == in * ld;
  // In panel order: element `at` is in column (at / (in a)) a + at % a.
  for (size_t at = 0; at < w.size() && finite; ++at) {
    const float m = std::fabs(w[at]);
    finite = std::isfinite(m);
    float& col_max = max_abs[at / (in * a) * a + at % a];
    if (m > col_max) col_max = m;
  }
  bool exact = finite;
  std::vector<int> exponent(ld, 0);
  for (size_t c = 0; c < ld && exact; ++c) {
    exponent[c] = int8_exponent(max_abs[c]);
    (*scale)[c] = std::ldexp(1.0f, exponent[c]);
  }
  for (size_t at = 0; at < w.size() && exact; ++at)
    exact = int8_exact(w[at], exponent[at / (in * a) * a + at % a], &(*q)[at]);
  if (!exact) {
    q->clear();
    scale->clear();
  }
  return exact;
}

const char* weight_storage_name(WeightStorage storage) {
  switch (storage) {
    case WeightStorage::kFloat32: return "float32";
    case WeightStorage::kBinary16: return "binary16";
    case WeightStorage::kInt8: return "int8";
  }
  return "unknown";
}

void pack_linear(const float* w_out_in, const float* bias, int out, int in, PackedLinear* p) {
  p->in = in;
  p->out = out;
  p->ld = padded_columns(out);
  const size_t ins = static_cast<size_t>(in);
  p->w.assign(ins * p->ld, 0.0f);
  p->w16.clear();
  p->w8.clear();
  p->w8_scale.clear();
  p->b.assign(p->ld, 0.0f);
  for (size_t o = 0; o < static_cast<size_t>(out); ++o) {
    const float* row = w_out_in + o * ins;
    for (size_t i = 0; i < ins; ++i) p->w[panel_offset(ins, i, o)] = row[i];
    if (bias != nullptr) p->b[o] = bias[o];
  }
}

bool pack_to_half(PackedLinear* p) {
  std::vector<uint16_t> w16;
  if (!to_half(p->w, &w16)) return false;
  p->w16 = std::move(w16);
  p->w = std::vector<float>();
  return true;
}

bool pack_to_int8(PackedLinear* p) {
  std::vector<int8_t> q;
  std::vector<float> scale;
  if (!to_int8(p->w, static_cast<size_t>(p->in), p->ld, &q, &scale)) return false;
  p->w8 = std::move(q);
  p->w8_scale = std::move(scale);
  p->w = std::vector<float>();
  return true;
}

WeightStorage pack_smallest(const Kernels& kernels, const std::vector<PackedLinear*>& lins) {
  // Convert into copies first: the matrices move only when every one of them converts.
  if (kernels.matmul_bias_int8 != nullptr) {
    std::vector<std::vector<int8_t>> qs(lins.size());
    std::vector<std::vector<float>> scales(lins.size());
    bool exact = true;
    for (size_t i = 0; i < lins.size() && exact; ++i)
      exact = to_int8(lins[i]->w, static_cast<size_t>(lins[i]->in), lins[i]->ld, &qs[i],
                      &scales[i]);
    if (exact) {
      for (size_t i = 0; i < lins.size(); ++i) {
        lins[i]->w8 = std::move(qs[i]);
        lins[i]->w8_scale = std::move(scales[i]);
        lins[i]->w = std::vector<float>();
      }
      return WeightStorage::kInt8;
    }
  }
  if (kernels.matmul_bias_half != nullptr) {
    std::vector<std::vector<uint16_t>> halves(lins.size());
    bool exact = true;
    for (size_t i = 0; i < lins.size() && exact; ++i) exact = to_half(lins[i]->w, &halves[i]);
    if (exact) {
      for (size_t i = 0; i < lins.size(); ++i) {
        lins[i]->w16 = std::move(halves[i]);
        lins[i]->w = std::vector<float>();
      }
      return WeightStorage::kBinary16;
    }
  }
  return WeightStorage::kFloat32;
}

std::vector<float> widened_weights(const PackedLinear& p) {
  switch (p.storage()) {
    case WeightStorage::kInt8: {
      const size_t a = static_cast<size_t>(kColumnAlign), in = static_cast<size_t>(p.in);
      std::vector<float> out(p.w8.size());
      for (size_t at = 0; at < out.size(); ++at)
        out[at] = static_cast<float>(p.w8[at]) * p.w8_scale[at / (in * a) * a + at % a];
      return out;
    }
    case WeightStorage::kBinary16: {
      std::vector<float> out(p.w16.size());
      for (size_t i = 0; i < out.size(); ++i) out[i] = det::half_to_float(p.w16[i]);
      return out;
    }
    case WeightStorage::kFloat32:
      break;
  }
  return p.w;
}

void linear_columns(const Kernels& kernels, const float* x, size_t ldx, size_t rows,
                    const PackedLinear& p, size_t c0, size_t cols, float* y, size_t ldy) {
  const size_t in = static_cast<size_t>(p.in);
  const size_t at = c0 * in;  // panel c0 / kColumnAlign starts here in every storage
  const float* b = p.b.data() + c0;
  switch (p.storage()) {
    case WeightStorage::kInt8:
      kernels.matmul_bias_int8(x, ldx, rows, p.w8.data() + at, p.w8_scale.data() + c0, in, b, y,
                               ldy, cols);
      return;
    case WeightStorage::kBinary16:
      kernels.matmul_bias_half(x, ldx, rows, p.w16.data() + at, in, b, y, ldy, cols);
      return;
    case WeightStorage::kFloat32:
      kernels.matmul_bias(x, ldx, rows, p.w.data() + at, in, b, y, ldy, cols);
      return;
  }
}

void linear(const Kernels& kernels, const float* x, size_t ldx, size_t rows,
            const PackedLinear& p, float* y, size_t ldy) {
  linear_columns(kernels, x, ldx, rows, p, 0, p.ld, y, ldy);
}

}  // namespace soundspring::lm
