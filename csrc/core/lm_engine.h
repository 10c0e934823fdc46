// SpringLM inference engine: deterministic float32 C++ for everything the transceiver runs.
//
// Reproduces python/soundspring/models/masked_lm.py (class SpringLM) and its coding-model
// adapter (models/lm_adapter.py) for any SpringLMConfig:
//   - Commit: the memory pass of one chunk (memory view: base levels visible, every fine
//     level MASK_UPPER; attention inside the chunk) whose per-layer keys and values enter
//     the stream's ring of the last R // C chunks;
//   - FineLogits / FineLogitsBatch: the coding pass of one chunk (coding view) against that
//     memory, without changing it, and the level heads of levels [lo, hi);
//   - FineCdfs: the same with cdf_from_logits (core/cdf.h) fused behind the heads, so the
//     range coder receives integer CDFs straight from the engine;
//   - ConcealLogits: the bidirectional concealment window (uncached, full attention).
//
// Shapes: K_max levels (n_codebooks), V codebook size, D width, L layers, H heads,
// Dh = D / H, C frames per chunk, R context reach in frames, W window frames. Token ids are
// int64 in [0, V + 2): V = MASK, V + 1 = MASK_UPPER. Token arrays are level-major
// ([levels, frames], row-major), logits [levels, frames, V] row-major.
//
// Determinism: the results are a pure function of (weights, tokens, memory contents), bit
// for bit, whatever the instruction set (generic / SSE2 / AVX2 / AVX-512, chosen at run
// time or forced), the thread count, the batch size and which other streams share a batch.
// Every reduction follows det_math.h's rule (left-to-right float32 sums), every elementary
// function is det_math.h's own, and the vector kernels of lm_kernels.h parallelise across
// independent outputs only. Memory keys are visited oldest first, so the result does not
// depend on where the ring's write position stands. Agreement with PyTorch is to float
// rounding (about 1e-6 on logits of order 10), not bitwise: PyTorch sums in other orders.
//
// Weights are given as float32 tensors in PyTorch's layout, keyed by the state-dict names
// of SpringLM (the Python wrapper reads them from the shipped weights file with
// soundspring.models.lm_weights.read_lm_weights, which verifies the SHA-256). Create
// checks every name and shape and copies them into its own packed layout: the caller's
// buffers may be freed afterwards. Hyperparameters come from the caller (ModelShape);
// the engine holds no second copy of any preset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/lm_kernels.h"
#include "core/packed_linear.h"
#include "core/status.h"

namespace soundspring::lm {

/// The model shape (the fields of SpringLMConfig that inference needs).
struct ModelShape {
  int n_codebooks = 0;         // K_max >= 1
  int codebook_size = 0;       // V >= 2
  int base_codebooks = 0;      // levels of the memory view, in [1, K_max]
  int dim = 0;                 // D, a multiple of n_heads
  int n_layers = 0;            // L >= 1
  int n_heads = 0;             // H >= 1
  int ffn_mult = 0;            // FFN hidden width = ffn_mult * D
  int max_context_frames = 0;  // largest R a stream may use
  int max_rel_distance = 0;    // M: frame distances clip to [-M, M] for the position bias
  bool tie_embeddings = true;  // heads reuse the first V embedding rows of each level
};

/// A borrowed float32 tensor, row-major with the given shape.
struct TensorRef {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

/// State-dict name -> tensor. Expected names: embed.weight [K_max (V+2), D];
/// blocks.{l}.{ln1,ln2}.{weight,bias} [D]; blocks.{l}.qkv.weight [3D, D], .bias [3D];
/// blocks.{l}.proj.weight [D, D], .bias [D]; blocks.{l}.ff1.weight [F D, D], .bias [F D];
/// blocks.{l}.ff2.weight [D, F D], .bias [D]; rel_bias_self, rel_bias_mem [L, H, 2M + 1];
/// ln_out.{weight,bias} [D]; head_bias [K_max, V]; head_weight [K_max, V, D] (untied only).
using TensorMap = std::map<std::string, TensorRef>;

/// "[d0, d1, ...]": a tensor shape in error messages.
std::string shape_string(const std::vector<int64_t>& shape);

struct EngineOptions {
  Isa isa = Isa::kAuto;  // kernel level; one the CPU lacks is refused
  int num_threads = 1;   // worker threads per call, in [1, 256]; never changes the bits
};

struct PackedLayer {
  std::vector<float> ln1_g, ln1_b, ln2_g, ln2_b;  // [D]
  PackedLinear qkv, proj, ff1, ff2;
};

/// Every weight of the model, packed once by Engine::Create; what a device copy uploads.
struct PackedModel {
  ModelShape s;
  int vocab = 0;           // V + 2 embedding rows per level
  int dh = 0;              // D / H
  int n_dist = 0;          // 2M + 1 relative-position buckets
  float attn_scale = 0.0f; // float32(1 / sqrt(Dh)), as torch rounds it
  std::vector<float> embed;  // [K_max vocab, D]
  std::vector<PackedLayer> layers;
  std::vector<float> rel_self, rel_mem;   // [L, H, 2M + 1]
  std::vector<float> ln_out_g, ln_out_b;  // [D]
  size_t ldv = 0;                         // V padded to kColumnAlign
  // The level heads as one linear layer D -> K_max ldv: level k's [D, V] matrix (and bias)
  // in columns [k ldv, k ldv + V), so level k's panels are those of columns [k ldv, (k + 1) ldv).
  PackedLinear heads;
  // How every matrix (the layers' and the heads') is held: one storage for all,
  // packed_linear.h pack_smallest.
  WeightStorage storage = WeightStorage::kFloat32;
};

/// Largest chunk the engine accepts (frames); the transceiver uses at most 5.
constexpr int kMaxChunkFrames = 1024;

/// Largest concealment window (frames): 4096 frames = 82 s at 50 Hz, far beyond any
/// jitter-buffer window, and a bound on the call's O(W^2) attention work.
constexpr int kMaxWindowFrames = 1 << 12;

/// Largest batch of streams stepped together.
constexpr int kMaxBatch = 1 << 16;

/// The coding memory of one stream: pass-1 keys and values of the last R // C committed
/// chunks in a preallocated ring (capacity (R // C) C frames), never growing. A value type:
/// copying it is a snapshot. Only the engine that made it (or one of the same model shape
/// and weights) may read it, and not from two calls at once.
class StreamState {
 public:
  StreamState() = default;

  int context_frames() const { return context_frames_; }
  int chunk_frames() const { return chunk_frames_; }
  int capacity_frames() const { return capacity_frames_; }
  /// Frames committed since the stream started (or the last Reset).
  int64_t frames() const { return frames_; }
  /// Empties the memory (a new stream) without reallocating.
  void Reset();

 private:
  friend class Engine;
  int n_layers_ = 0;
  int dim_ = 0;
  int context_frames_ = 0;
  int chunk_frames_ = 0;  // 0: not made by Engine::NewState
  int capacity_frames_ = 0;
  int write_ = 0;         // next slot to write, a multiple of C
  int64_t frames_ = 0;
  std::vector<float> keys_;     // [L, cap, D]
  std::vector<float> values_;   // [L, cap, D]
  std::vector<int64_t> slot_frame_;  // [cap] stream frame of each slot
  std::vector<uint8_t> valid_;       // [cap] slot holds a committed frame
};

class Engine {
 public:
  /// Checks `shape`, every tensor of `weights` (names and shapes, nothing missing, nothing
  /// extra) and `options`, and packs the weights. kInvalidArgument names what is wrong; a
  /// message about the tensors starts with "weights" (the Python wrapper reports those as
  /// ModelMismatchError).
  static Status Create(const ModelShape& shape, const TensorMap& weights,
                       const EngineOptions& options, std::unique_ptr<Engine>* out);

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelShape& shape() const;
  /// The packed weights (read-only; valid while the engine lives).
  const PackedModel& packed() const;
  /// The resolved kernel level (never kAuto).
  Isa isa() const;
  int num_threads() const;

  /// An empty memory for a stream with reach R = context_frames in [0, max_context_frames]
  /// and chunks of C = chunk_frames in [1, kMaxChunkFrames] frames.
  Status NewState(int context_frames, int chunk_frames, StreamState* out) const;

  /// Memory pass: appends one chunk to `state` from `base` int64 [n_levels, C] (levels at
  /// or above base_codebooks are ignored; n_levels in [1, K_max]); the oldest chunk drops
  /// out of a full ring. With capacity 0 (R < C) only the frame count advances.
  Status Commit(const int64_t* base, int n_levels, int n_frames, StreamState* state) const;

  /// Commit of `batch` distinct streams at once: base int64 [batch, n_levels, C], states[b]
  /// stream b's memory (all with the same C, any reach). Bit-identical to `batch` separate
  /// Commit calls; nothing changes if any argument is refused.
  Status CommitBatch(StreamState* const* states, int batch, const int64_t* base, int n_levels,
                     int n_frames) const;

  /// Coding pass: float32 logits out [hi - lo, C, V] of levels [lo, hi) (0 <= lo < hi <=
  /// K_max) for the chunk `view` int64 [n_levels, C] (levels >= n_levels are MASK_UPPER),
  /// against the memory of `state`, which is not changed.
  Status FineLogits(const StreamState& state, const int64_t* view, int n_levels, int n_frames,
                    int lo, int hi, float* out) const;

  /// FineLogits of `batch` independent streams at once: views int64 [batch, n_levels, C],
  /// out float32 [batch, hi - lo, C, V]; states[b] is stream b's memory (all with the same
  /// C). Bit-identical to `batch` separate FineLogits calls.
  Status FineLogitsBatch(const StreamState* const* states, int batch, const int64_t* views,
                         int n_levels, int n_frames, int lo, int hi, float* out) const;

  /// FineLogits followed by cdf_from_logits: out uint32 [hi - lo, C, V + 1], each row a CDF
  /// of total 2^precision_bits (precision_bits in [1, 16], V <= 2^precision_bits).
  Status FineCdfs(const StreamState& state, const int64_t* view, int n_levels, int n_frames,
                  int lo, int hi, int precision_bits, uint32_t* out) const;

  /// Concealment window: float32 logits out [hi - lo, W, V] for `window` int64
  /// [n_levels, W] (base levels of received frames visible, of lost frames MASK; levels at
  /// or above base_codebooks ignored), full attention over the W frames.
  Status ConcealLogits(const int64_t* window, int n_levels, int n_frames, int lo, int hi,
                       float* out) const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace soundspring::lm
