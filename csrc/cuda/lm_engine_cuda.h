// The SpringLM engine on a CUDA device: the same computation as csrc/core/lm_engine.h, bit
// for bit, for many independent streams stepped together.
//
// Every output is computed by the functions of core/lm_ops.h and core/det_math.h, the very
// code the CPU engine runs (one GPU thread per output: an embedding row, a LayerNorm row,
// one matrix-product element, one attention query of one head), with the explicitly
// rounded intrinsics (__fadd_rn, __fmul_rn, __fdiv_rn, __fsqrt_rn) and --fmad=false. So the
// logits equal the CPU engine's bits, which the check tool (check_lm_engine_cuda.cc)
// verifies on a device.
//
// Streams live in a pool of slots on the device, each with its own preallocated ring of
// pass-1 keys and values (R // C chunks); one call steps any set of distinct slots. The
// weights are uploaded once from a CPU Engine's packed model. The class is not thread-safe:
// one host thread drives one CudaEngine.
//
// Built only when CMake finds nvcc (target soundspring_lm_cuda); device failures come back as
// kInvalidArgument statuses whose message starts with "CUDA:".
#pragma once

#include <cstdint>
#include <memory>

#include "core/lm_engine.h"
#include "core/status.h"

namespace soundspring::lm::cuda {

/// Whether a CUDA device is present and usable.
bool DeviceAvailable();

class CudaEngine {
 public:
  /// Uploads `cpu`'s packed weights to the current device and allocates `n_slots` stream
  /// slots (n_slots in [1, 65536]) with reach R = context_frames and chunks of C frames.
  static Status Create(const Engine& cpu, int n_slots, int context_frames, int chunk_frames,
                       std::unique_ptr<CudaEngine>* out);

  ~CudaEngine();
  CudaEngine(const CudaEngine&) = delete;
  CudaEngine& operator=(const CudaEngine&) = delete;

  int n_slots() const;
  /// Frames committed to `slot` (-1 for a slot out of range).
  int64_t frames(int slot) const;

  /// Empties one slot's memory (a new stream).
  Status ResetSlot(int slot);

  /// Memory pass of one chunk per stream: base int64 [batch, n_levels, C] into the distinct
  /// slots slots[0 .. batch); as Engine::Commit for each.
  Status CommitBatch(const int* slots, int batch, const int64_t* base, int n_levels, int n_frames);

  /// Coding pass: out float32 [batch, hi - lo, C, V] (host memory) for views int64
  /// [batch, n_levels, C] against the memories of slots[0 .. batch); as
  /// Engine::FineLogitsBatch.
  Status FineLogitsBatch(const int* slots, int batch, const int64_t* views, int n_levels,
                         int n_frames, int lo, int hi, float* out);

  /// Concealment window: out float32 [hi - lo, W, V] (host memory) for window int64
  /// [n_levels, W]; as Engine::ConcealLogits.
  Status ConcealLogits(const int64_t* window, int n_levels, int n_frames, int lo, int hi,
                       float* out);

 private:
  struct Impl;
  explicit CudaEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace soundspring::lm::cuda
