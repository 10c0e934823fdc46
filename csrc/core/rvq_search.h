// Greedy residual-VQ token search (the codec's quantiser at inference, and the transmitter's
// rate-distortion token choice), deterministic float32 with no Python and no torch.
//
// For rows r_n [D] (n < N) and levels k = lo .. hi-1 of a codebook stack [K, V, D], level by
// level:
//
//   score(n, v) = (sum over b of p_b(n, v)) + ||c_v||^2 (+ lambda * bits[n, k - lo, v])
//   idx[k - lo, n] = the lowest v < V with the smallest score(n, v)
//   r_n = r_n - c_idx                                            (float32, element-wise)
//
// where p_b(n, v) is the left-to-right float32 sum, from +0.0f, of r_n[i] * (-2 c_v[i]) over
// the inputs i of block b = [16 b, 16 b + 16) (lm_kernels.h's blocked reduction: the same
// matmul_bias kernels, with -2 C^T as the weights and the squared norms as the bias), and
// ||c_v||^2 the left-to-right float32 sum of c_v[i] * c_v[i]. ||r_n||^2 is the same for every
// v and is left out. This is argmin_v ||r_n - c_v||^2 + lambda * bits up to float rounding:
// candidates within rounding of each other may be ordered differently from another
// summation order (PyTorch's BLAS), never otherwise.
//
// Determinism: every score is one fixed sequence of correctly rounded float32 operations
// (-ffp-contract=off, no fast-math; cmake/SoundspringWarnings.cmake), vector lanes hold
// distinct codewords, rows are independent, and the argmin is a scalar scan in index order.
// The result is therefore the same bits for every instruction-set level (generic, SSE2,
// AVX2, AVX-512), thread count, row count and row split: a row's tokens depend only on that
// row. Codebooks stored as binary16 (only when every -2 c is exactly a binary16, as for
// codebooks saved in fp16; widened exactly before use) give the same bits as float32 storage
// and halve the bytes each search reads.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/lm_kernels.h"
#include "core/status.h"

namespace soundspring::rvq {

/// How the packed codebooks are held. kAuto: binary16 when it is lossless (every stored
/// -2 c exactly representable) and the kernel level has exact widening (AVX2 with F16C,
/// AVX-512), float32 otherwise. Either way the tokens are the same.
enum class Storage : int { kAuto = 0, kFloat32 = 1, kFloat16 = 2 };

struct SearchOptions {
  lm::Isa isa = lm::Isa::kAuto;  // kernel level (lm_kernels.h); never changes the bits
  int num_threads = 1;           // worker threads per Search call, in [1, 256]; never changes the bits
  Storage storage = Storage::kAuto;
};

/// Rows per block of the search: a block's scores [kRowBlock, V] stay in cache while its
/// levels run; blocks are the unit of work of the threads.
constexpr int kRowBlock = 64;

/// A codebook stack [K, V, D] packed for the search (weights -2 C_k^T in lm_kernels.h's
/// column panels, squared norms precomputed). Immutable after Create; Search is const and
/// may run from several threads at once.
class Codebooks {
 public:
  /// Packs `codebooks`, float32 [n_codebooks, codebook_size, dim] C-contiguous (copied; the
  /// caller's buffer may be freed afterwards). Ranges: n_codebooks in [1, 4096],
  /// codebook_size in [1, 65536], dim in [1, 65536], num_threads in [1, 256]. Every value
  /// must be finite, and every -2 c and every squared norm finite.
  /// Returns kInvalidArgument otherwise, for an ISA this CPU cannot run, or for
  /// Storage::kFloat16 when it is lossy or the ISA has no exact widening.
  static Status Create(const float* codebooks, int n_codebooks, int codebook_size, int dim,
                       const SearchOptions& options, std::unique_ptr<Codebooks>* out);

  /// The greedy search over levels [lo, hi) (0 <= lo < hi <= n_codebooks) of `rows` rows.
  ///
  /// residual: float32 [rows, dim] C-contiguous, finite; on success it holds r minus the
  ///   chosen codewords (the residual left for level hi), untouched on error.
  /// bits: nullptr, or float32 [rows, hi - lo, bits_width] C-contiguous (bits_width >=
  ///   codebook_size; values past codebook_size are not read), finite: what coding each v
  ///   would cost at each level. Ignored (never read) when rd_lambda == 0.
  /// rd_lambda: finite, >= 0; squared-error units per bit.
  /// codes: int64 [hi - lo, rows] C-contiguous, the chosen indices (level-major).
  /// rows may be 0 (nothing is read or written). Returns kInvalidArgument for bad levels,
  /// sizes, lambda or non-finite inputs.
  Status Search(float* residual, int64_t rows, int lo, int hi, const float* bits,
                int64_t bits_width, float rd_lambda, int64_t* codes) const;

  int n_codebooks() const { return k_; }
  int codebook_size() const { return v_; }
  int dim() const { return d_; }
  int num_threads() const { return num_threads_; }
  lm::Isa isa() const { return kernels_->isa; }
  /// kFloat32 or kFloat16 (never kAuto): what Create chose.
  Storage storage() const { return half_ ? Storage::kFloat16 : Storage::kFloat32; }
  /// Bytes of packed codebook weights one level's search reads.
  size_t level_bytes() const;

 private:
  Codebooks() = default;
  void SearchBlock(float* residual, int64_t row0, int64_t rows, int lo, int hi,
                   const float* bits, int64_t bits_width, float rd_lambda, int64_t* codes,
                   int64_t total_rows, float* scores) const;

  int k_ = 0, v_ = 0, d_ = 0;
  int vp_ = 0;  // codebook_size rounded up to lm::kColumnAlign (padded columns: zero weights)
  int num_threads_ = 1;
  bool half_ = false;
  const lm::Kernels* kernels_ = nullptr;
  std::vector<float> w32_;     // [K][vp / 16 panels][dim][16]: -2 c, float32 storage
  std::vector<uint16_t> w16_;  // the same, binary16 storage
  std::vector<float> norms_;   // [K][vp]: ||c_v||^2 (0 in the padded columns)
};

/// Parses "auto", "fp32", "fp16"; false for anything else.
bool parse_storage(const char* name, Storage* out);

/// "auto", "fp32" or "fp16".
const char* storage_name(Storage storage);

}  // namespace soundspring::rvq
