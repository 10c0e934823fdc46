// Readers of the flat weights files that `soundspring export` writes
// (soundspring.models.export.write_flat_tensors; layout in its docstring): model weights
// for C++ programs with no Python or torch. Their user is examples/cpp_receiver; the
// Python package hands the engines their weights itself.
//
// One container, several kinds. Layout (little-endian): magic (8 bytes, the kind's) |
// version u32 | json_len u32 | JSON header (UTF-8) | crc32 u32 of every byte before it |
// zero padding to a multiple of 64 bytes | data section (data_bytes bytes; each tensor
// row-major at its `offset`, float16 or float32) | crc32 u32 of the data section. The JSON
// holds `format` (the kind's), `version`, `data_bytes`, `tensors` (entries `name`, `dtype`,
// `shape`, `offset`, `nbytes`) and the kind's own keys:
//
//   kind            magic     format                           keys
//   SpringLM        SSLMFLAT  soundspring-springlm-flat        config (SpringLMConfig),
//                                                              model_id, engine_model_id,
//                                                              tokenizer_sha256
//   codec decoder   SSCDFLAT  soundspring-codec-decoder-flat   config (CodecConfig),
//                                                              codec_id, tokenizer_sha256
//
// ReadFlatTensors reads the whole file (never out of bounds, whatever its bytes), checks
// magic, version, both CRC-32s and the format, parses the header (core/json_reader.h),
// checks every tensor entry against the data section and widens float16 to float32
// (exactly). LoadFlatLm and LoadFlatCodec build the engines on top of it, which check
// every name and shape against the recorded config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/codec_engine.h"
#include "core/json_reader.h"
#include "core/lm_engine.h"
#include "core/status.h"

namespace soundspring::flat {

/// What distinguishes one kind of flat file: its magic, header format, version, and the
/// words that name it in messages.
struct FlatKind {
  char magic[8];
  const char* format;
  std::uint32_t version;
  const char* what;
};

inline constexpr FlatKind kSpringLmFlat = {{'S', 'S', 'L', 'M', 'F', 'L', 'A', 'T'},
                                           "soundspring-springlm-flat", 1,
                                           "flat SpringLM weights"};
inline constexpr FlatKind kCodecDecoderFlat = {{'S', 'S', 'C', 'D', 'F', 'L', 'A', 'T'},
                                               "soundspring-codec-decoder-flat", 1,
                                               "flat codec decoder weights"};

/// Tensor offsets in the data section are multiples of this (bytes); the data section
/// starts at the first multiple after the header CRC.
inline constexpr std::size_t kFlatAlign = 64;

struct FlatTensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;  ///< row-major, widened to float32.
};

struct FlatTensors {
  json::JsonValue header;                     ///< the whole JSON header.
  std::map<std::string, FlatTensor> tensors;  ///< by name (names are unique).

  /// Views of every tensor (valid while *this lives and `tensors` is unchanged).
  lm::TensorMap Map() const;
};

/// Parses one flat file held in memory (`size` bytes at `data`; `name` names it in
/// messages). Errors: InvalidArgument (not a file of `kind`: magic or format), Truncated
/// (shorter than its header or data section say), UnsupportedVersion, Integrity (a CRC
/// mismatch), Corrupt (a header or tensor table that does not fit: bad JSON, a dtype
/// other than float16 / float32, a tensor outside the data section or whose byte count is
/// not its shape's, a repeated name, more than 8 dimensions or 2^34 elements).
Status ParseFlatTensors(const std::uint8_t* data, std::size_t size, const std::string& name,
                        const FlatKind& kind, FlatTensors* out);

/// ParseFlatTensors of the file at `path`; InvalidArgument when it cannot be read.
Status ReadFlatTensors(const std::string& path, const FlatKind& kind, FlatTensors* out);

/// IEEE binary16 -> binary32 (exact for every input, NaN payloads kept).
float HalfToFloat(std::uint16_t h);

}  // namespace soundspring::flat

namespace soundspring::lm {

struct FlatLm {
  std::unique_ptr<lm::Engine> engine;
  lm::ModelShape shape;
  std::vector<float> unigram;     ///< [K_max, V] float32 log-probabilities.
  std::string model_id;           ///< the weights' content hash (PyTorch-coded streams).
  std::string engine_model_id;    ///< what engine-coded streams record.
  std::string tokenizer_sha256;   ///< the codec tokenizer the LM models.
};

/// A SpringLM flat file (flat::kSpringLmFlat): the engine, its shape, and the unigram
/// table (tensor unigram_logprobs [K_max, V], the static base PMFs) beside it. Errors:
/// ReadFlatTensors's, InvalidArgument / Corrupt for a config or unigram table that does
/// not fit, and the engine's own (a tensor missing or of the wrong shape for the config).
Status LoadFlatLm(const std::string& path, const lm::EngineOptions& options, FlatLm* out);

}  // namespace soundspring::lm

namespace soundspring::codec {

/// The codec decoder of a flat file, with the quantizer codebooks that turn tokens into
/// its latents.
struct FlatCodec {
  std::unique_ptr<Decoder> decoder;
  CodecShape shape;
  int n_codebooks = 0;              ///< K (RVQ depth)
  int codebook_size = 0;            ///< V
  std::vector<float> codebooks;     ///< [K, V, D] float32 (finite)
  std::string codec_id;             ///< the codec's content hash (weights_io.codec_content_hash)
  std::string tokenizer_sha256;     ///< its tokenizer hash (encoder and codebooks)
};

/// A codec decoder flat file (flat::kCodecDecoderFlat): tensors decoder.* (names and
/// shapes as Decoder::Create expects) and quantizer.codebooks [K, V, D]. Errors:
/// ReadFlatTensors's, InvalidArgument / Corrupt for a config or codebooks that do not fit
/// (or hold a non-finite value), and Decoder::Create's.
Status LoadFlatCodec(const std::string& path, const CodecOptions& options, FlatCodec* out);

/// tokens int64 [n_levels, n_frames] (level-major) -> latents float32 [n_frames, D]: the
/// sum over levels k = 0, 1, ..., n_levels - 1, in that order, of codebooks[k, token] in
/// float32 starting from level 0's row (ResidualVQ.decode's and CodecEngine.decode_step's
/// additions, so the same bits). InvalidArgument for n_levels outside [1, K], n_frames < 0
/// or a token outside [0, V); `latents` is then untouched.
Status TokensToLatents(const FlatCodec& codec, const std::int64_t* tokens, int n_levels,
                       int n_frames, float* latents);

}  // namespace soundspring::codec
