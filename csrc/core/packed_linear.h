// The packed weight layout of the engine's matrix kernels (lm_kernels.h), shared by the
// SpringLM engine, the residual-VQ search and the codec engine: one place that packs a
// PyTorch [out, in] weight into column panels and decides its storage (float32, binary16
// or block-floating-point int8; the same values, hence the same bits, in each).
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

/// Largest |q| of block-floating-point int8 storage (symmetric: -128 is never used).
constexpr int kInt8MaxMagnitude = 127;

/// Smallest block exponent: 2^-149 is the least float32 subnormal, so every scale 2^e is a
/// float32 (the largest exponent int8_exponent gives is 122, for FLT_MAX).
constexpr int kInt8MinExponent = -149;

/// The block exponent of a column whose largest |weight| is max_abs (finite, >= 0): the
/// smallest e >= kInt8MinExponent with max_abs <= kInt8MaxMagnitude 2^e, so the column's
/// finest grid; 0 for a zero column. A column is int8-exact at some exponent iff it is at
/// this one (an integer multiple of 2^e' is one of 2^e for every e <= e').
int int8_exponent(float max_abs);

/// q with f == q 2^e exactly and |q| <= kInt8MaxMagnitude, when there is one; false
/// otherwise (inexact, too large, inf or NaN). -0.0 gives q = 0: a zero weight of either
/// sign gives the kernels' sums the same bits (lm_kernels.h's partial sums start at +0.0f,
/// so they never hold -0.0f, and adding a zero product of either sign leaves them as they
/// are), so storing it as +0 changes no result.
bool int8_exact(float f, int e, int8_t* q);

/// The packed matrix w (column panels of `in` inputs, ld columns, ld a multiple of
/// kColumnAlign) as block-float int8 when every column is exact: *q in the same layout and
/// *scale [ld] = 2^e_c with e_c = int8_exponent(max |column c|) (1 for zero and padded
/// columns). False (q and scale cleared) otherwise.
bool to_int8(const std::vector<float>& w, size_t in, size_t ld, std::vector<int8_t>* q,
             std::vector<float>* scale);

/// How a PackedLinear holds its weights.
enum class WeightStorage : int { kFloat32 = 0, kBinary16 = 1, kInt8 = 2 };

/// "float32", "binary16" or "int8".
const char* weight_storage_name(WeightStorage storage);

/// A linear layer y = x W^T + b in the engine's layout (lm_kernels.h): W^T in column panels
/// of kColumnAlign columns, zero beyond `out` up to ld (a multiple of kColumnAlign); b [ld]
/// likewise. The weights are held in exactly one of three storages, the others empty: float32
/// (w), binary16 (w16) when every weight is a half, or block-floating-point int8 (w8 and
/// w8_scale: W(i, c) = w8 * w8_scale[c], w8_scale[c] = 2^e_c) when every column is exact
/// so: the same values, a half or a quarter of the bytes.
struct PackedLinear {
  int in = 0;
  int out = 0;
  size_t ld = 0;
  std::vector<float> w;         // [ld / kColumnAlign, in, kColumnAlign], or empty
  std::vector<uint16_t> w16;    // the same in binary16, or empty
  std::vector<int8_t> w8;       // the same as block-float q, or empty
  std::vector<float> w8_scale;  // [ld] 2^e_c with w8 (1 in zero and padded columns), or empty
  std::vector<float> b;         // [ld]

  WeightStorage storage() const {
    return !w8.empty() ? WeightStorage::kInt8
                       : (!w16.empty() ? WeightStorage::kBinary16 : WeightStorage::kFloat32);
  }
};

/// Packs w_out_in (float32 [out, in], row-major) and bias ([out], or nullptr for zeros)
/// into float32 storage.
void pack_linear(const float* w_out_in, const float* bias, int out, int in, PackedLinear* p);

/// Moves p's float32 weights to binary16 storage when every one is exact; false (p
/// unchanged) otherwise.
bool pack_to_half(PackedLinear* p);

/// Moves p's float32 weights to block-float int8 storage (to_int8) when every column is
/// exact; false (p unchanged) otherwise.
bool pack_to_int8(PackedLinear* p);

/// Moves every listed matrix (each in float32 storage) to the smallest storage in which all
/// of them are exact and `kernels` has a product: int8, else binary16, else they all stay
/// float32. One storage for all keeps an engine's choice a single, reportable fact.
/// Returns the storage chosen.
WeightStorage pack_smallest(const Kernels& kernels, const std::vector<PackedLinear*>& lins);

/// p's weights as float32 in the panel layout, whichever storage holds them (exact).
std::vector<float> widened_weights(const PackedLinear& p);

/// y [rows, ldy >= cols] = x [rows, p.in] (row stride ldx) times columns [c0, c0 + cols) of
/// W^T, plus b, with `kernels` from whichever storage p holds (the same bits either way;
/// `kernels` must have that storage's product). c0 and cols are multiples of kColumnAlign
/// with c0 + cols <= p.ld.
void linear_columns(const Kernels& kernels, const float* x, size_t ldx, size_t rows,
                    const PackedLinear& p, size_t c0, size_t cols, float* y, size_t ldy);

/// linear_columns over every column: y [rows, ldy >= p.ld].
void linear(const Kernels& kernels, const float* x, size_t ldx, size_t rows,
            const PackedLinear& p, float* y, size_t ldy);

}  // namespace soundspring::lm
