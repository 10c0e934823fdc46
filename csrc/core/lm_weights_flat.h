// Loader of the flat SpringLM weights file (written by soundspring.models.export
// .write_lm_flat; layout in its docstring): the C++ engine's weights without Python or torch.
//
// LoadFlatLm reads the whole file, checks the magic, version and both CRC-32s, parses the
// JSON header (core/json_reader.h), checks every tensor entry against the data section,
// widens float16 to float32 (exactly) and builds a soundspring::lm::Engine
// (core/lm_engine.h), which checks every name and shape against the model shape. The
// unigram table (unigram_logprobs [K_max, V], the static base PMFs) is returned beside the
// engine. Its user is examples/cpp_receiver; the Python package hands the engine its
// weights itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/lm_engine.h"
#include "core/status.h"

namespace soundspring::lm {

struct FlatLm {
  std::unique_ptr<lm::Engine> engine;
  lm::ModelShape shape;
  std::vector<float> unigram;     ///< [K_max, V] float32 log-probabilities.
  std::string model_id;           ///< the weights' content hash (PyTorch-coded streams).
  std::string engine_model_id;    ///< what engine-coded streams record.
  std::string tokenizer_sha256;   ///< the codec tokenizer the LM models.
};

/// Errors: InvalidArgument (unreadable file, not a flat file), UnsupportedVersion,
/// Integrity (a CRC mismatch), Corrupt (a header or tensor table that does not fit), and
/// the engine's own (a tensor missing or of the wrong shape for the config).
Status LoadFlatLm(const std::string& path, const lm::EngineOptions& options, FlatLm* out);

/// IEEE binary16 -> binary32 (exact for every input, NaN payloads kept).
float HalfToFloat(std::uint16_t h);

}  // namespace soundspring::lm
