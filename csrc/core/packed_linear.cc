#include "core/packed_linear.h"

#include <cstring>

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

void pack_linear(const float* w_out_in, const float* bias, int out, int in, PackedLinear* p) {
  p->in = in;
  p->out = out;
  p->ld = padded_columns(out);
  const size_t ins = static_cast<size_t>(in);
  p->w.assign(ins * p->ld, 0.0f);
  p->w16.clear();
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

void linear(const Kernels& kernels, const float* x, size_t ldx, size_t rows,
            const PackedLinear& p, float* y, size_t ldy) {
  const size_t in = static_cast<size_t>(p.in);
  if (!p.w16.empty()) {
    kernels.matmul_bias_half(x, ldx, rows, p.w16.data(), in, p.b.data(), y, ldy, p.ld);
  } else {
    kernels.matmul_bias(x, ldx, rows, p.w.data(), in, p.b.data(), y, ldy, p.ld);
  }
}

}  // namespace soundspring::lm
