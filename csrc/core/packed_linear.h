// The packed weight layout of the engine's matrix kernels (lm_kernels.h), shared by the
// SpringLM engine, the residual-VQ search and the codec engine: one place that packs a
// PyTorch [out, in] weight into column panels and decides binary16 storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/lm_kernels.h"

namespace soundspring::lm {

/// n rounded up to a whole number of kColumnAlign columns.
size_t padded_columns(int n);

/// Offset of W(i, c) in the column-panel layout of lm_kernels.h (`in` inputs per column).
size_t panel_offset(size_t in, size_t i, size_t c);

/// The binary16 pattern of f when f is exactly a binary16 value (zero, normal or subnormal
/// half, either sign); false otherwise (inexact, out of range, inf or NaN).
bool half_exact(float f, uint16_t* out);

/// w converted to binary16 into *w16 when every value is exact; false (w16 cleared) otherwise.
bool to_half(const std::vector<float>& w, std::vector<uint16_t>* w16);

/// A linear layer y = x W^T + b in the engine's layout (lm_kernels.h): W^T in column panels
/// of kColumnAlign columns, zero beyond `out` up to ld (a multiple of kColumnAlign); b [ld]
/// likewise. The weights are held either as float32 (w) or, when exactly representable and
/// the ISA widens binary16 fast, as binary16 (w16, w empty): the same values, half the bytes.
struct PackedLinear {
  int in = 0;
  int out = 0;
  size_t ld = 0;
  std::vector<float> w;       // [ld / kColumnAlign, in, kColumnAlign], or empty
  std::vector<uint16_t> w16;  // the same in binary16, or empty
  std::vector<float> b;       // [ld]
};

/// Packs w_out_in (float32 [out, in], row-major) and bias ([out], or nullptr for zeros).
void pack_linear(const float* w_out_in, const float* bias, int out, int in, PackedLinear* p);

/// Moves p's weights to binary16 storage when every one is exact; false (p unchanged)
/// otherwise.
bool pack_to_half(PackedLinear* p);

/// y [rows, ldy >= p.ld] = x [rows, p.in] (row stride ldx) W^T + b with `kernels`, from
/// whichever storage p holds (the same bits either way).
void linear(const Kernels& kernels, const float* x, size_t ldx, size_t rows,
            const PackedLinear& p, float* y, size_t ldy);

}  // namespace soundspring::lm
