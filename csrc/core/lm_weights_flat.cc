#include "core/lm_weights_flat.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <tuple>

#include "core/crc.h"
#include "core/json_reader.h"

namespace soundspring::lm {
namespace {

using json::GetBool;
using json::GetInt;
using json::GetString;
using json::JsonValue;
using json::ParseJson;

constexpr char kMagic[8] = {'S', 'S', 'L', 'M', 'F', 'L', 'A', 'T'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kAlign = 64;

std::uint32_t ReadU32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

Status ShapeField(const JsonValue& cfg, const char* key, std::int64_t lo, std::int64_t hi,
                  int* out) {
  std::int64_t v = 0;
  Status st = GetInt(cfg, key, "flat SpringLM config", lo, hi, &v);
  if (st.ok()) *out = static_cast<int>(v);
  return st;
}

}  // namespace

float HalfToFloat(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits = 0;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3FFu;
      bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f = 0.0f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

Status LoadFlatLm(const std::string& path, const lm::EngineOptions& options, FlatLm* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot read flat SpringLM weights '" + path + "'");
  const std::vector<std::uint8_t> blob((std::istreambuf_iterator<char>(in)),
                                       std::istreambuf_iterator<char>());
  if (blob.size() < 20 || std::memcmp(blob.data(), kMagic, 8) != 0) {
    return InvalidArgument("'" + path + "' is not a flat SpringLM weights file");
  }
  const std::uint32_t version = ReadU32(blob.data() + 8);
  if (version != kVersion) {
    return UnsupportedVersion("'" + path + "': flat weights version " + std::to_string(version) +
                              " unsupported (this build reads 1)");
  }
  const std::size_t json_len = ReadU32(blob.data() + 12);
  const std::size_t end = 16 + json_len;
  if (json_len > blob.size() || end + 4 > blob.size()) return Corrupt("'" + path + "': truncated header");
  if (transport::Crc32(blob.data(), end) != ReadU32(blob.data() + end)) {
    return IntegrityError("'" + path + "': header CRC mismatch (corrupt file?)");
  }
  JsonValue header;
  Status st = ParseJson(reinterpret_cast<const char*>(blob.data()) + 16, json_len, &header);
  if (!st.ok()) return st;
  std::string format;
  if (!GetString(header, "format", "flat SpringLM", &format).ok() ||
      format != "soundspring-springlm-flat") {
    return InvalidArgument("'" + path + "': not a soundspring-springlm-flat header");
  }
  std::int64_t data_bytes = 0;
  st = GetInt(header, "data_bytes", "flat SpringLM", 0, INT64_C(1) << 40, &data_bytes);
  if (!st.ok()) return st;
  const std::size_t start = (end + 4 + kAlign - 1) / kAlign * kAlign;
  const std::size_t size = static_cast<std::size_t>(data_bytes);
  if (start > blob.size() || blob.size() - start < size + 4) {
    return Corrupt("'" + path + "': data section truncated");
  }
  const std::uint8_t* data = blob.data() + start;
  if (transport::Crc32(data, size) != ReadU32(data + size)) {
    return IntegrityError("'" + path + "': data CRC mismatch (corrupt file?)");
  }
  st = GetString(header, "model_id", "flat SpringLM", &out->model_id);
  if (st.ok()) st = GetString(header, "engine_model_id", "flat SpringLM", &out->engine_model_id);
  if (st.ok()) st = GetString(header, "tokenizer_sha256", "flat SpringLM", &out->tokenizer_sha256);
  if (!st.ok()) return st;
  const JsonValue* cfg = header.find("config");
  if (cfg == nullptr || !cfg->is_object()) return Corrupt("'" + path + "': no config object");
  lm::ModelShape& s = out->shape;
  for (auto [key, field, lo, hi] : {std::tuple<const char*, int*, int, int>{"n_codebooks", &s.n_codebooks, 1, 64},
                                    {"codebook_size", &s.codebook_size, 2, 1 << 16},
                                    {"base_codebooks", &s.base_codebooks, 1, 64},
                                    {"dim", &s.dim, 1, 1 << 14},
                                    {"n_layers", &s.n_layers, 1, 256},
                                    {"n_heads", &s.n_heads, 1, 1 << 10},
                                    {"ffn_mult", &s.ffn_mult, 1, 64},
                                    {"max_context_frames", &s.max_context_frames, 0, 1 << 12},
                                    {"max_rel_distance", &s.max_rel_distance, 0, 1 << 14}}) {
    st = ShapeField(*cfg, key, lo, hi, field);
    if (!st.ok()) return st;
  }
  st = GetBool(*cfg, "tie_embeddings", "flat SpringLM config", &s.tie_embeddings);
  if (!st.ok()) return st;
  const JsonValue* tensors = header.find("tensors");
  if (tensors == nullptr || tensors->kind != JsonValue::Kind::kArray) {
    return Corrupt("'" + path + "': no tensor table");
  }
  std::map<std::string, std::vector<float>> widened;
  lm::TensorMap map;
  for (const JsonValue& t : tensors->array) {
    std::string name, dtype;
    std::int64_t offset = 0, nbytes = 0;
    st = GetString(t, "name", "tensor", &name);
    if (st.ok()) st = GetString(t, "dtype", "tensor " + name, &dtype);
    if (st.ok()) st = GetInt(t, "offset", "tensor " + name, 0, data_bytes, &offset);
    if (st.ok()) st = GetInt(t, "nbytes", "tensor " + name, 0, data_bytes, &nbytes);
    if (!st.ok()) return st;
    const JsonValue* shape = t.find("shape");
    if (shape == nullptr || shape->kind != JsonValue::Kind::kArray || shape->array.size() > 8) {
      return Corrupt("tensor " + name + ": bad shape");
    }
    std::vector<std::int64_t> dims;
    std::int64_t count = 1;
    for (const JsonValue& d : shape->array) {
      if (d.kind != JsonValue::Kind::kNumber || !d.integral || d.number < 0 || d.number > 1e9) {
        return Corrupt("tensor " + name + ": bad dimension");
      }
      dims.push_back(static_cast<std::int64_t>(d.number));
      count *= dims.back();
      if (count > (INT64_C(1) << 34)) return Corrupt("tensor " + name + ": too large");
    }
    const std::int64_t item = dtype == "float16" ? 2 : dtype == "float32" ? 4 : 0;
    if (item == 0) return Corrupt("tensor " + name + ": dtype '" + dtype + "' unsupported");
    if (nbytes != item * count || offset + nbytes > data_bytes) {
      return Corrupt("tensor " + name + ": does not fit the data section");
    }
    std::vector<float> f(static_cast<std::size_t>(count));
    const std::uint8_t* src = data + offset;
    for (std::size_t i = 0; i < f.size(); ++i) {
      if (item == 2) {
        f[i] = HalfToFloat(static_cast<std::uint16_t>(src[2 * i] | (src[2 * i + 1] << 8)));
      } else {
        const std::uint32_t bits = ReadU32(src + 4 * i);
        std::memcpy(&f[i], &bits, sizeof(float));
      }
    }
    if (name == "unigram_logprobs") {
      out->unigram = std::move(f);
      if (dims.size() != 2 || dims[0] != s.n_codebooks || dims[1] != s.codebook_size) {
        return Corrupt("unigram_logprobs must be [K_max, V]");
      }
      continue;
    }
    auto& kept = widened[name];
    kept = std::move(f);
    map[name] = lm::TensorRef{kept.data(), dims};
  }
  if (out->unigram.empty()) return Corrupt("'" + path + "': no unigram_logprobs tensor");
  return lm::Engine::Create(s, map, options, &out->engine);
}

}  // namespace soundspring::lm
