// The transmitter's whole per-chunk entropy path in C++: the rate-distortion token choice
// (core/rvq_search.h) under the coder's own PMFs, then the combined payload of those tokens
// (normative description: docs/bitstream.md, "Token payloads"). It is the C++ form of
// soundspring.models.rd.RateDistortionQuantizer driven by ChunkCoder.rate_bits, followed by
// ChunkCoder.encode_chunk, in one call with no Python between the steps; the PMFs come from
// ChunkDecoder::LayerCdfs, the ones the receiver decodes with. Torch-free.
//
// Layer by layer (layer 0 the base, static PMFs; fine layer i conditioned on the levels
// below it as the stream settings say): the layer's CDF rows, their bit costs, the search
// of its levels with the residual carried from the layer below; then the payload: base
// levels frame-major, the base check when the format has one, every fine layer, one check
// over every level.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/chunk_decoder.h"
#include "core/cpu_clock.h"
#include "core/lm_engine.h"
#include "core/rvq_search.h"
#include "core/status.h"

namespace soundspring::entropy {

class ChunkEncoder {
 public:
  /// `coder` (stream settings, base CDFs, fine PMFs) and `codebooks` (the codec's
  /// quantiser packed for the search, K >= the stream's levels, V <= the coder's) are
  /// borrowed and must outlive the encoder.
  /// bits_of_frequency: float32 [2^precision_bits + 1] (copied): what a symbol of
  ///   frequency f costs, precision_bits - log2(f) (entry 0 never read): the caller's
  ///   table, so both implementations of the search read the same float32 costs.
  /// base_bits: float32 [C, 3, V] (copied): what each base value costs.
  /// Errors: InvalidArgument for null arguments or codebooks that do not fit.
  static Status Create(const ChunkDecoder* coder, const rvq::Codebooks* codebooks,
                       const float* bits_of_frequency, const float* base_bits,
                       std::unique_ptr<ChunkEncoder>* out);

  /// One chunk against the memory `state` (not changed).
  /// residual: float32 [C, D] C-contiguous, the chunk's latents frame-major; updated in
  ///   place (the residual after the last level), untouched on error.
  /// rd_lambda: squared-error units per bit, finite and >= 0 (0: nearest codewords; the
  ///   costs are then not computed).
  /// tokens: int64 [K, C] level-major, the chosen tokens.
  /// payload: the combined payload of those tokens.
  /// Errors: InvalidArgument for bad values (non-finite latents, lambda out of range).
  Status EncodeChunk(const lm::StreamState& state, float* residual, float rd_lambda,
                     std::int64_t* tokens, std::vector<std::uint8_t>* payload) const;

  const ChunkDecoder& coder() const { return *coder_; }
  int dim() const { return codebooks_->dim(); }
  /// CPU time spent in the token search (bit costs included), when enabled: the
  /// "rd_search" stage of a profile (the model's share is coder().model_time()).
  const StageCounter& search_time() const { return search_time_; }
  /// CPU time of whole EncodeChunk calls (search and model included), counted with
  /// search_time: the payload's share is the rest.
  const StageCounter& chunk_time() const { return chunk_time_; }

 private:
  ChunkEncoder() = default;

  const ChunkDecoder* coder_ = nullptr;
  const rvq::Codebooks* codebooks_ = nullptr;
  std::vector<float> bits_of_frequency_;  // [2^p + 1]
  std::vector<float> base_bits_;          // [C, 3, V]
  StageCounter search_time_;
  StageCounter chunk_time_;
};

}  // namespace soundspring::entropy
