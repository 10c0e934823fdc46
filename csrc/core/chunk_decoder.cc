#include "core/chunk_decoder.h"

#include <cmath>
#include <string>

#include "core/cdf.h"
#include "core/crc.h"
#include "core/range_coder.h"

namespace soundspring::entropy {
namespace {

// Logits rounded to the coder's grid, as ChunkCoder._quantise (numpy float32 arithmetic:
// x * 2^6, round half to even, / 2^6; all exact but the rounding).
void Quantise(const float* in, std::size_t n, float* out) {
  const float scale = static_cast<float>(1 << kLogitStepLog2);
  for (std::size_t i = 0; i < n; ++i) out[i] = std::nearbyint(in[i] * scale) / scale;
}

std::vector<int> CheckPieces(int check_bits) {
  std::vector<int> pieces(static_cast<std::size_t>(check_bits / 8), 8);
  if (check_bits % 8) pieces.push_back(check_bits % 8);
  return pieces;
}

// Reads the check value (uniform pieces of <= 8 bits, most significant first).
std::uint32_t DecodeCheck(RangeDecoder* dec, int check_bits, int precision_bits) {
  std::uint32_t value = 0;
  std::vector<std::uint32_t> cdf;
  for (int bits : CheckPieces(check_bits)) {
    cdf.resize((std::size_t{1} << bits) + 1);
    for (std::size_t i = 0; i < cdf.size(); ++i) {
      cdf[i] = static_cast<std::uint32_t>(i) << (precision_bits - bits);
    }
    value = (value << bits) | static_cast<std::uint32_t>(dec->decode(cdf.data(), 1 << bits,
                                                                     precision_bits));
  }
  return value;
}

Status Undecodable(const RangeDecoder& dec) {
  return dec.failed() ? dec.status() : Status::Ok();
}

}  // namespace

std::uint32_t IntegrityValue(const std::int64_t* base, int chunk_frames,
                             const std::int64_t* tokens, std::size_t n_tokens,
                             std::uint8_t salt, int check_bits) {
  std::vector<std::uint8_t> bytes;
  const std::size_t n_base = static_cast<std::size_t>(kBaseLevels * chunk_frames);
  bytes.reserve(1 + 2 * (n_base + n_tokens));
  bytes.push_back(salt);
  auto put = [&bytes](std::int64_t v) {
    const auto u = static_cast<std::uint16_t>(static_cast<std::int16_t>(v));
    bytes.push_back(static_cast<std::uint8_t>(u & 0xFF));
    bytes.push_back(static_cast<std::uint8_t>(u >> 8));
  };
  for (std::size_t i = 0; i < n_base; ++i) put(base[i]);
  for (std::size_t i = 0; i < n_tokens; ++i) put(tokens[i]);
  const std::uint32_t crc = transport::Crc32(bytes.data(), bytes.size());
  return check_bits >= 32 ? crc : crc & ((std::uint32_t{1} << check_bits) - 1u);
}

int ChunkDecoder::layer_hi(int i) const {
  return kLayerBounds[i + 1] < s_.n_codebooks ? kLayerBounds[i + 1] : s_.n_codebooks;
}

Status ChunkDecoder::Create(const ChunkSettings& settings, const lm::Engine* engine,
                            const float* unigram, std::unique_ptr<ChunkDecoder>* out,
                            int n_codebooks_max) {
  const ChunkSettings& s = settings;
  if (s.n_codebooks != 3 && s.n_codebooks != 6 && s.n_codebooks != 12 && s.n_codebooks != 24) {
    return InvalidArgument("n_codebooks must be 3, 6, 12 or 24");
  }
  if (s.chunk_frames < 1 || s.chunk_frames > 5) return InvalidArgument("chunk_frames must be in [1, 5]");
  if (s.check_bits < 0 || s.check_bits > 16) return InvalidArgument("check_bits must be in [0, 16]");
  if (s.precision_bits < 10 || s.precision_bits > 16) {
    return InvalidArgument("precision_bits must be in [10, 16]");
  }
  if (unigram == nullptr) return InvalidArgument("the unigram table is required");
  if (engine == nullptr && s.n_codebooks != kBaseLevels) {
    return InvalidArgument("a stream with fine levels needs the SpringLM engine");
  }
  lm::ModelShape shape;
  if (engine != nullptr) {
    shape = engine->shape();
  } else {
    shape.n_codebooks = n_codebooks_max;
    shape.codebook_size = kMask;
    shape.base_codebooks = kBaseLevels;
    shape.max_context_frames = 50;
  }
  if (shape.n_codebooks < s.n_codebooks || shape.codebook_size != kMask ||
      shape.base_codebooks != kBaseLevels) {
    return InvalidArgument("the SpringLM shape does not fit the stream (K_max, V or base levels)");
  }
  if (s.context_frames < 0 || s.context_frames > shape.max_context_frames) {
    return InvalidArgument("context_frames out of the model's range");
  }
  std::unique_ptr<ChunkDecoder> d(new ChunkDecoder());
  d->s_ = s;
  d->engine_ = engine;
  d->k_max_ = shape.n_codebooks;
  d->vocab_ = shape.codebook_size;
  d->n_layers_ = 0;
  while (d->n_layers_ < 4 && kLayerBounds[d->n_layers_] < s.n_codebooks) ++d->n_layers_;
  d->combined_base_check_ = (s.context_frames / s.chunk_frames) > 0 || d->n_layers_ == 1;
  const std::size_t v = static_cast<std::size_t>(d->vocab_);
  std::vector<float> q(kBaseLevels * v);
  Quantise(unigram, q.size(), q.data());
  std::vector<std::uint32_t> base(kBaseLevels * (v + 1));
  Status st = cdf_from_logits(q.data(), kBaseLevels, d->vocab_, s.precision_bits, base.data());
  if (!st.ok()) return st;
  d->base_rows_.resize(static_cast<std::size_t>(s.chunk_frames) * base.size());
  for (int f = 0; f < s.chunk_frames; ++f) {
    std::copy(base.begin(), base.end(), d->base_rows_.begin() + static_cast<std::ptrdiff_t>(f * base.size()));
  }
  *out = std::move(d);
  return Status::Ok();
}

Status ChunkDecoder::ModelCdfs(const lm::StreamState& state, const std::int64_t* tokens,
                               int revealed, int lo, int hi,
                               std::vector<std::uint32_t>* out) const {
  ScopedStageTimer timer(model_time_);
  const int c = s_.chunk_frames;
  const std::size_t v = static_cast<std::size_t>(vocab_);
  std::vector<std::int64_t> view(static_cast<std::size_t>(k_max_ * c), kMaskUpper);
  for (int l = 0; l < s_.n_codebooks; ++l) {
    for (int f = 0; f < c; ++f) {
      view[static_cast<std::size_t>(l * c + f)] = l < revealed ? tokens[l * c + f] : kMask;
    }
  }
  const std::size_t rows = static_cast<std::size_t>((hi - lo) * c);
  out->resize(rows * (v + 1));
  if (s_.fused_cdfs) {
    return engine_->FineCdfs(state, view.data(), k_max_, c, lo, hi, s_.precision_bits, out->data());
  }
  std::vector<float> logits(rows * v);
  Status st = engine_->FineLogits(state, view.data(), k_max_, c, lo, hi, logits.data());
  if (!st.ok()) return st;
  Quantise(logits.data(), logits.size(), logits.data());
  return cdf_from_logits(logits.data(), rows, vocab_, s_.precision_bits, out->data());
}

Status ChunkDecoder::LayerCdfs(const lm::StreamState& state, const std::int64_t* tokens,
                               int layer, std::vector<std::uint32_t>* groups_cache,
                               bool* have_groups, std::vector<std::uint32_t>* rows) const {
  const int lo = layer_lo(layer), hi = layer_hi(layer);
  const int first = layer_lo(1), end = s_.n_codebooks;
  const int c = s_.chunk_frames;
  const std::size_t w = static_cast<std::size_t>(vocab_) + 1;
  const std::vector<std::uint32_t>* src = nullptr;
  int src_lo = lo;
  std::vector<std::uint32_t> own;
  if (s_.progressive) {
    Status st = ModelCdfs(state, tokens, lo, lo, hi, &own);
    if (!st.ok()) return st;
    src = &own;
  } else {
    if (!*have_groups) {
      Status st = ModelCdfs(state, tokens, first, first, end, groups_cache);
      if (!st.ok()) return st;
      *have_groups = true;
    }
    src = groups_cache;
    src_lo = first;
  }
  // [L, C, V + 1] level-major -> frame-major rows (frame 0 levels lo..hi-1, frame 1, ...)
  rows->resize(static_cast<std::size_t>((hi - lo) * c) * w);
  for (int f = 0; f < c; ++f) {
    for (int l = lo; l < hi; ++l) {
      const std::uint32_t* from = src->data() + (static_cast<std::size_t>((l - src_lo) * c + f)) * w;
      std::copy(from, from + w, rows->begin() + static_cast<std::ptrdiff_t>(
                                                    static_cast<std::size_t>(f * (hi - lo) + (l - lo)) * w));
    }
  }
  return Status::Ok();
}

namespace {

// Base levels of `c` frames (frame-major symbols) into level-major base [3, C].
void ReadBase(RangeDecoder* dec, const std::vector<std::uint32_t>& rows, int c, int vocab,
              int precision_bits, std::int64_t* base) {
  const std::size_t w = static_cast<std::size_t>(vocab) + 1;
  for (int f = 0; f < c; ++f) {
    for (int l = 0; l < kBaseLevels; ++l) {
      const std::size_t r = static_cast<std::size_t>(f * kBaseLevels + l);
      base[l * c + f] = dec->decode(rows.data() + r * w, vocab, precision_bits);
    }
  }
}

}  // namespace

Status ChunkDecoder::DecodeBase(const std::uint8_t* data, std::size_t size,
                                std::int64_t* base) const {
  RangeDecoder dec(data, size);
  const int c = s_.chunk_frames;
  ReadBase(&dec, base_rows_, c, vocab_, s_.precision_bits, base);
  Status st = Undecodable(dec);
  if (!st.ok()) return st;
  if (s_.check_bits) {
    const std::uint32_t got = DecodeCheck(&dec, s_.check_bits, s_.precision_bits);
    st = Undecodable(dec);
    if (!st.ok()) return st;
    if (got != IntegrityValue(base, c, nullptr, 0, kBaseCheckSalt, s_.check_bits)) {
      return IntegrityError("base integrity check failed");
    }
  }
  return Status::Ok();
}

Status ChunkDecoder::DecodeChunkBase(const std::uint8_t* data, std::size_t size,
                                     std::int64_t* base) const {
  if (!combined_base_check_) return InvalidArgument("combined payloads of this format have no base check");
  return DecodeBase(data, size, base);
}

Status ChunkDecoder::DecodeChunk(const lm::StreamState& state, const std::uint8_t* data,
                                 std::size_t size, DecodedTokens* out) const {
  const int c = s_.chunk_frames, k = s_.n_codebooks;
  RangeDecoder dec(data, size);
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(k * c), 0);
  ReadBase(&dec, base_rows_, c, vocab_, s_.precision_bits, tokens.data());
  Status st = Undecodable(dec);
  if (!st.ok()) return st;
  if (combined_base_check_ && s_.check_bits) {
    const std::uint32_t got = DecodeCheck(&dec, s_.check_bits, s_.precision_bits);
    st = Undecodable(dec);
    if (!st.ok()) return st;
    if (got != IntegrityValue(tokens.data(), c, nullptr, 0, kBaseCheckSalt, s_.check_bits)) {
      return IntegrityError("base integrity check failed");
    }
  }
  out->fine_failed = false;
  if (n_layers_ == 1) {
    out->tokens = tokens;
    out->n_levels = kBaseLevels;
    return Status::Ok();
  }
  std::vector<std::uint32_t> groups, rows;
  bool have_groups = false;
  const std::size_t w = static_cast<std::size_t>(vocab_) + 1;
  for (int layer = 1; layer < n_layers_ && st.ok(); ++layer) {
    const int lo = layer_lo(layer), hi = layer_hi(layer);
    st = LayerCdfs(state, tokens.data(), layer, &groups, &have_groups, &rows);
    if (!st.ok()) break;
    for (int f = 0; f < c; ++f) {
      for (int l = lo; l < hi; ++l) {
        const std::size_t r = static_cast<std::size_t>(f * (hi - lo) + (l - lo));
        tokens[static_cast<std::size_t>(l * c + f)] = dec.decode(rows.data() + r * w, vocab_,
                                                                 s_.precision_bits);
      }
    }
    st = Undecodable(dec);
  }
  if (st.ok() && s_.check_bits) {
    const std::uint32_t got = DecodeCheck(&dec, s_.check_bits, s_.precision_bits);
    st = Undecodable(dec);
    if (st.ok() && got != IntegrityValue(tokens.data(), c, tokens.data() + kBaseLevels * c,
                                         static_cast<std::size_t>((k - kBaseLevels) * c),
                                         kCombinedCheckSalt, s_.check_bits)) {
      st = IntegrityError("integrity check failed");
    }
  }
  if (!st.ok()) {
    if (st.code() == StatusCode::kInvalidArgument) return st;  // a caller error, not the bytes
    if (!combined_base_check_) return st;
    tokens.resize(static_cast<std::size_t>(kBaseLevels * c));
    out->tokens = tokens;
    out->n_levels = kBaseLevels;
    out->fine_failed = true;
    return Status::Ok();
  }
  out->tokens = tokens;
  out->n_levels = k;
  return Status::Ok();
}

Status ChunkDecoder::DecodeFine(const lm::StreamState& state, const std::int64_t* base,
                                const std::uint8_t* const* payloads, const std::size_t* sizes,
                                DecodedTokens* out) const {
  const int c = s_.chunk_frames, k = s_.n_codebooks;
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(k * c), 0);
  std::copy(base, base + kBaseLevels * c, tokens.begin());
  int n_levels = kBaseLevels;
  out->fine_failed = false;
  std::vector<std::uint32_t> groups, rows;
  bool have_groups = false;
  const std::size_t w = static_cast<std::size_t>(vocab_) + 1;
  std::vector<std::int64_t> got;
  for (int layer = 1; layer < n_layers_; ++layer) {
    if (payloads[layer - 1] == nullptr) break;
    const int lo = layer_lo(layer), hi = layer_hi(layer);
    RangeDecoder dec(payloads[layer - 1], sizes[layer - 1]);
    Status st = LayerCdfs(state, tokens.data(), layer, &groups, &have_groups, &rows);
    if (st.code() == StatusCode::kInvalidArgument) return st;
    got.assign(static_cast<std::size_t>((hi - lo) * c), 0);
    if (st.ok()) {
      for (int f = 0; f < c; ++f) {
        for (int l = lo; l < hi; ++l) {
          const std::size_t r = static_cast<std::size_t>(f * (hi - lo) + (l - lo));
          got[static_cast<std::size_t>((l - lo) * c + f)] =
              dec.decode(rows.data() + r * w, vocab_, s_.precision_bits);
        }
      }
      st = Undecodable(dec);
    }
    if (st.ok() && s_.check_bits) {
      const std::uint32_t value = DecodeCheck(&dec, s_.check_bits, s_.precision_bits);
      st = Undecodable(dec);
      if (st.ok() && value != IntegrityValue(base, c, got.data(), got.size(),
                                             static_cast<std::uint8_t>(layer), s_.check_bits)) {
        st = IntegrityError("integrity check failed");
      }
    }
    if (!st.ok()) {
      out->fine_failed = true;
      break;
    }
    std::copy(got.begin(), got.end(), tokens.begin() + lo * c);
    n_levels = hi;
  }
  tokens.resize(static_cast<std::size_t>(n_levels * c));
  out->tokens = std::move(tokens);
  out->n_levels = n_levels;
  return Status::Ok();
}

}  // namespace soundspring::entropy
