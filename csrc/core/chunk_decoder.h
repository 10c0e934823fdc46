// Decoding one chunk's token payloads in C++ (normative description: docs/bitstream.md,
// "Token payloads"; the Python coder is soundspring.entropy.chunk.ChunkCoder). Torch-free:
// the static base PMFs come from the SpringLM unigram table, the fine PMFs from the
// deterministic engine (core/lm_engine.h), the arithmetic from core/range_coder.h and
// core/cdf.h, the checks from core/crc.h.
//
// Tokens are int64, level-major: tokens[l * C + f] is level l of frame f.
//
// Fine PMFs. A stream coded by the engine (its header's model_id is the weights' id plus
// "+engine1") takes the engine's fused CDFs (Engine::FineCdfs); one coded through the
// PyTorch reference took cdf_from_logits of its logits rounded to multiples of 1/64, which
// this decoder reproduces from the engine's logits (FineLogits): those agree with PyTorch's
// to about 1e-6, so a rare row rounds differently and that payload fails its integrity
// check (a loss, never garbage).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cpu_clock.h"
#include "core/lm_engine.h"
#include "core/status.h"

namespace soundspring::entropy {

inline constexpr int kMask = 1024;       ///< token id of a level to predict (V).
inline constexpr int kMaskUpper = 1025;  ///< token id of a level above the bitrate (V + 1).
inline constexpr int kBaseLevels = 3;
inline constexpr int kLayerBounds[5] = {0, 3, 6, 12, 24};
inline constexpr std::uint8_t kBaseCheckSalt = 0;
inline constexpr std::uint8_t kCombinedCheckSalt = 0xFF;
inline constexpr int kLogitStepLog2 = 6;

/// The stream settings a chunk decoder needs (the .spring header's fields).
struct ChunkSettings {
  int n_codebooks = 12;     ///< K at the bitrate: 3, 6, 12 or 24.
  int chunk_frames = 2;     ///< C, 1..5.
  int context_frames = 0;   ///< R, 0..max_context_frames.
  bool progressive = false;
  int check_bits = 8;       ///< 0..16.
  int precision_bits = 16;  ///< 10..16.
  bool fused_cdfs = true;   ///< engine-coded stream (see the file comment).
};

/// A decoded chunk: tokens [n_levels, C] level-major and how far it decoded.
struct DecodedTokens {
  std::vector<std::int64_t> tokens;
  int n_levels = 0;
  bool fine_failed = false;  ///< a fine payload (or the combined fine part) failed.
};

class ChunkDecoder {
 public:
  /// `unigram` float32 [K_max, V] (borrowed only during Create); `engine` must outlive
  /// the decoder, and may be null for a stream without fine layers (n_codebooks 3), whose
  /// model shape is then K_max = n_codebooks_max, V = 1024.
  /// Errors: InvalidArgument for settings out of range or a model too small.
  static Status Create(const ChunkSettings& settings, const lm::Engine* engine,
                       const float* unigram, std::unique_ptr<ChunkDecoder>* out,
                       int n_codebooks_max = 24);

  const ChunkSettings& settings() const { return s_; }
  int n_layers() const { return n_layers_; }
  /// (lo, hi) levels of layer i.
  int layer_lo(int i) const { return kLayerBounds[i]; }
  int layer_hi(int i) const;
  /// Combined payloads carry a check after their base (R >= C, or base-only bitrates).
  bool combined_base_check() const { return combined_base_check_; }

  /// A base payload (a layered base packet, an FEC copy): the verified base [3, C].
  /// Errors: Corrupt (undecodable), Integrity (check failed).
  Status DecodeBase(const std::uint8_t* data, std::size_t size, std::int64_t* base) const;

  /// A combined payload against the memory `state`: every level, or (its final check
  /// failed but its base check passed) the base alone with fine_failed set.
  /// Errors: Corrupt / Integrity when nothing in it can be trusted.
  Status DecodeChunk(const lm::StreamState& state, const std::uint8_t* data, std::size_t size,
                     DecodedTokens* out) const;

  /// The base of a combined payload verified by its base check (combined_base_check()).
  Status DecodeChunkBase(const std::uint8_t* data, std::size_t size, std::int64_t* base) const;

  /// Layered fine payloads (payloads[i], sizes[i] of fine layer i + 1; null = not received)
  /// given the verified base [3, C]: the decodable prefix of levels.
  Status DecodeFine(const lm::StreamState& state, const std::int64_t* base,
                    const std::uint8_t* const* payloads, const std::size_t* sizes,
                    DecodedTokens* out) const;

  /// Frame-major CDF rows [C * L, V + 1] of fine layer `layer` (1..n_layers()-1) given the
  /// chunk's tokens [K, C] level-major (only the levels below the layer are read). Outside
  /// progressive mode every layer's rows come from one model call over all fine groups,
  /// kept in `groups_cache` (`have_groups` says whether it holds it: false for a new
  /// chunk). Shared with ChunkEncoder, so both ends take their PMFs from one place.
  Status LayerCdfs(const lm::StreamState& state, const std::int64_t* tokens, int layer,
                   std::vector<std::uint32_t>* groups_cache, bool* have_groups,
                   std::vector<std::uint32_t>* rows) const;
  /// The static base CDF rows [C * 3, V + 1], frame-major.
  const std::vector<std::uint32_t>& base_rows() const { return base_rows_; }
  int vocab() const { return vocab_; }
  /// CPU time spent in the model (the engine's CDFs or logits of every fine layer), when
  /// enabled: the "lm" stage of a profile.
  const StageCounter& model_time() const { return model_time_; }

 private:
  ChunkDecoder() = default;
  Status ModelCdfs(const lm::StreamState& state, const std::int64_t* tokens, int revealed,
                   int lo, int hi, std::vector<std::uint32_t>* out) const;

  ChunkSettings s_;
  const lm::Engine* engine_ = nullptr;
  StageCounter model_time_;
  int n_layers_ = 0;
  int k_max_ = 0;
  int vocab_ = 0;
  bool combined_base_check_ = false;
  std::vector<std::uint32_t> base_rows_;  // [C * 3, V + 1] frame-major
};

/// Low `check_bits` bits of CRC-32 over (salt, base [3, C] as int16 LE, tokens as int16 LE),
/// as soundspring.entropy.chunk.integrity_value.
std::uint32_t IntegrityValue(const std::int64_t* base, int chunk_frames,
                             const std::int64_t* tokens, std::size_t n_tokens,
                             std::uint8_t salt, int check_bits);

}  // namespace soundspring::entropy
