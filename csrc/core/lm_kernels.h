// Vector kernels of the SpringLM engine, one build per instruction set, chosen at run time.
//
// The kernel that needs vector code most is the biased matrix product of the linear layers
// and level heads (the element-wise activations of the codec engine are the others). The weights are packed in column panels of kColumnAlign columns: the
// weight of input i and column c sits at w[(c / 16) * in * 16 + i * 16 + c % 16], so a tile
// streams each panel front to back (no large strides, no cache-set aliasing). The result
// is defined element by element, as a blocked sum (more accurate than one running sum,
// and just as fixed):
//
//   p_b = sum over i in [16 b, min(16 b + 16, in)), left to right from +0.0f, of
//         x[r * ldx + i] * W(i, c)                         (partial sum of block b)
//   y[r * ldy + c] = (sum over b, left to right from +0.0f, of p_b) + bias[c]
//
// for every row r < rows and column c < cols. A vector lane only ever holds one column c,
// and each lane performs exactly the scalar sequence of multiplications and additions, so
// the SSE2 (4 lanes), AVX2 (8 lanes) and AVX-512 (16 lanes) builds, the scalar build and
// the CUDA kernels all produce the same bits, whatever the row blocking or thread split.
//
// Each instruction set lives in its own translation unit (lm_kernels_<isa>.cc, compiled
// with that ISA's -m flags) that exports a single function table; lm_kernels.cc detects
// the CPU (cpuid via __builtin_cpu_supports) and hands out the table.
#pragma once

#include <cstddef>
#include <cstdint>

namespace soundspring::lm {

/// Columns are processed in whole vectors of this many floats (the widest ISA's lanes):
/// every packed weight matrix and every output row holds a multiple of it.
constexpr int kColumnAlign = 16;

/// Inputs per partial sum of the blocked reduction (normative: part of the bits).
constexpr int kSumBlock = 16;

/// Instruction-set levels of the engine's kernels. kGeneric is portable C++ (16-lane vector
/// extensions with the AVX-512 tiling; the only level on CPUs other than x86-64); kAuto
/// picks the best level the CPU supports.
enum class Isa : int { kAuto = 0, kGeneric = 1, kSse2 = 2, kAvx2 = 3, kAvx512 = 4 };

/// y = x W + bias over padded columns (see the file comment). Preconditions: cols is a
/// multiple of kColumnAlign; w holds cols / kColumnAlign panels of in x kColumnAlign
/// floats, bias holds cols floats, and each row of y holds cols floats (ldy >= cols).
using MatmulBiasFn = void (*)(const float* x, size_t ldx, size_t rows, const float* w, size_t in,
                              const float* bias, float* y, size_t ldy, size_t cols);

/// The same product with the weights stored as IEEE binary16 (same panel layout). Each
/// weight is widened exactly to float32 before its multiplication, so the result is bit
/// for bit matmul_bias on the widened weights: half storage only halves the bytes read.
using MatmulBiasHalfFn = void (*)(const float* x, size_t ldx, size_t rows, const uint16_t* w,
                                  size_t in, const float* bias, float* y, size_t ldy, size_t cols);

/// The same product with block-floating-point int8 weights (same panel layout): weight
/// W(i, c) = q[i, c] * scale[c] with q int8 and scale[c] = 2^e_c, one exponent per column
/// (packed_linear.h to_int8). Each q is widened exactly to float32 and multiplied by its
/// column's scale before its multiplication with x; that product is exactly the float32
/// weight q 2^e_c (a representable value, so no rounding, subnormals included), so the
/// result is bit for bit matmul_bias on those weights: int8 storage only quarters the
/// bytes of float32. scale holds cols floats (1 in padded columns).
using MatmulBiasInt8Fn = void (*)(const float* x, size_t ldx, size_t rows, const int8_t* w,
                                  const float* scale, size_t in, const float* bias, float* y,
                                  size_t ldy, size_t cols);

/// y[i] = f(x[i]) for i < n (y may equal x): the element-wise activations of the codec
/// engine, each lane det_math.h's scalar function bit for bit (act_kernels_impl.h).
using ElementwiseFn = void (*)(const float* x, float* y, size_t n);

/// scratch[i] = det_exp(double(logits[i]) - m) for i < n (cdf.h's normative exponential:
/// every level gives its bits), the inner loop of cdf_from_logits.
using CdfExpRowFn = void (*)(const float* logits, int n, double m, double* scratch);

/// Why CdfRowFn refused a row (kNone: it wrote the CDF).
enum class CdfRowError : int {
  kNone = 0,
  kNonFinite = 1,  // a NaN or +inf logit, the first at *bad_index
  kAllNegInf = 2,  // every logit is -inf
};

/// One row of cdf_from_logits (cdf.h's normative quantiser: every level gives its bits):
/// n float32 logits -> cdf[0 .. n], total 2^precision_bits, every frequency >= 1.
/// Preconditions: 1 <= n <= 2^precision_bits, precision_bits in [1, 16]; scratch holds
/// n doubles. On a refusal cdf is unspecified and *bad_index set for kNonFinite only.
using CdfRowFn = CdfRowError (*)(const float* logits, int n, int precision_bits, double* scratch,
                                 uint32_t* cdf, int* bad_index);

struct Kernels {
  Isa isa;
  const char* name;  // "generic", "sse2", "avx2", "avx512"
  MatmulBiasFn matmul_bias;
  MatmulBiasHalfFn matmul_bias_half;  // nullptr where the ISA has no fast conversion (F16C)
  MatmulBiasInt8Fn matmul_bias_int8;  // nullptr at kGeneric (the float32 reference level)
  ElementwiseFn elu;   // x > 0 ? x : det_expf(x) - 1  (torch.nn.functional.elu, alpha 1)
  ElementwiseFn gelu;  // det_gelu(x)                  (torch.nn.functional.gelu, exact erf)
  CdfExpRowFn cdf_exp_row;
  CdfRowFn cdf_row;
};

/// Whether this build has kernels for `isa` and the CPU can run them (kAuto: always true).
bool isa_supported(Isa isa);

/// The best supported level on this CPU.
Isa best_isa();

/// The kernels of `isa` (kAuto resolves to best_isa()); nullptr when !isa_supported(isa).
const Kernels* kernels_for(Isa isa);

/// Parses "auto", "generic", "sse2", "avx2", "avx512"; returns false for anything else.
bool parse_isa(const char* name, Isa* out);

/// The lower-case name of a level ("auto" for kAuto).
const char* isa_name(Isa isa);

}  // namespace soundspring::lm
