#include "core/flat_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <tuple>
#include <utility>

#include "core/crc.h"

namespace soundspring::flat {
namespace {

using json::GetInt;
using json::GetString;
using json::JsonValue;

constexpr std::size_t kMaxDims = 8;
constexpr std::int64_t kMaxElements = INT64_C(1) << 34;
constexpr std::int64_t kMaxDataBytes = INT64_C(1) << 40;

std::uint32_t ReadU32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

// One entry of the tensor table, checked against the data section (`size` bytes at `data`).
Status ReadTensor(const JsonValue& t, const std::uint8_t* data, std::int64_t size,
                  const std::string& where, std::string* name, FlatTensor* out) {
  std::string dtype;
  std::int64_t offset = 0, nbytes = 0;
  if (!t.is_object()) return Corrupt(where + ": a tensor entry is not an object");
  Status st = GetString(t, "name", where + " tensor", name);
  const std::string what = where + " tensor " + *name;
  if (st.ok()) st = GetString(t, "dtype", what, &dtype);
  if (st.ok()) st = GetInt(t, "offset", what, 0, size, &offset);
  if (st.ok()) st = GetInt(t, "nbytes", what, 0, size, &nbytes);
  if (!st.ok()) return Corrupt(st.message());
  const JsonValue* shape = t.find("shape");
  if (shape == nullptr || shape->kind != JsonValue::Kind::kArray || shape->array.size() > kMaxDims) {
    return Corrupt(what + ": shape must be an array of at most 8 dimensions");
  }
  std::int64_t count = 1;
  out->shape.clear();
  for (const JsonValue& d : shape->array) {
    if (d.kind != JsonValue::Kind::kNumber || !d.integral || d.number < 0 ||
        d.number > static_cast<double>(kMaxElements)) {
      return Corrupt(what + ": a dimension is not an integer in [0, 2^34]");
    }
    const std::int64_t n = static_cast<std::int64_t>(d.number);
    if (n != 0 && count > kMaxElements / n) return Corrupt(what + ": more than 2^34 elements");
    count *= n;
    out->shape.push_back(n);
  }
  const std::int64_t item = dtype == "float16" ? 2 : dtype == "float32" ? 4 : 0;
  if (item == 0) return Corrupt(what + ": dtype '" + dtype + "' unsupported (float16, float32)");
  if (nbytes != item * count || offset > size - nbytes) {
    return Corrupt(what + ": does not fit the data section");
  }
  out->data.resize(static_cast<std::size_t>(count));
  const std::uint8_t* src = data + offset;
  for (std::size_t i = 0; i < out->data.size(); ++i) {
    if (item == 2) {
      out->data[i] = HalfToFloat(static_cast<std::uint16_t>(src[2 * i] | (src[2 * i + 1] << 8)));
    } else {
      const std::uint32_t bits = ReadU32(src + 4 * i);
      std::memcpy(&out->data[i], &bits, sizeof(float));
    }
  }
  return Status::Ok();
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

lm::TensorMap FlatTensors::Map() const {
  lm::TensorMap map;
  for (const auto& [name, t] : tensors) map[name] = lm::TensorRef{t.data.data(), t.shape};
  return map;
}

Status ParseFlatTensors(const std::uint8_t* blob, std::size_t size, const std::string& name,
                        const FlatKind& kind, FlatTensors* out) {
  if (out == nullptr || (blob == nullptr && size != 0)) return InvalidArgument("null argument");
  const std::string where = "'" + name + "'";
  if (size < 16 || std::memcmp(blob, kind.magic, 8) != 0) {
    return InvalidArgument(where + " is not a " + kind.what + " file");
  }
  const std::uint32_t version = ReadU32(blob + 8);
  if (version != kind.version) {
    return UnsupportedVersion(where + ": " + kind.what + " version " + std::to_string(version) +
                              " unsupported (this build reads " + std::to_string(kind.version) + ")");
  }
  const std::size_t json_len = ReadU32(blob + 12);
  if (json_len > size - 16 || size - 16 - json_len < 4) return Truncated(where + ": truncated header");
  const std::size_t end = 16 + json_len;
  if (transport::Crc32(blob, end) != ReadU32(blob + end)) {
    return IntegrityError(where + ": header CRC mismatch (corrupt file?)");
  }
  out->tensors.clear();
  Status st = json::ParseJson(reinterpret_cast<const char*>(blob) + 16, json_len, &out->header);
  if (!st.ok()) return Corrupt(where + ": header: " + st.message());
  const JsonValue& header = out->header;
  std::string format;
  if (!header.is_object() || !GetString(header, "format", kind.what, &format).ok() ||
      format != kind.format) {
    return InvalidArgument(where + ": not a " + kind.format + " header");
  }
  std::int64_t data_bytes = 0;
  st = GetInt(header, "data_bytes", kind.what, 0, kMaxDataBytes, &data_bytes);
  if (!st.ok()) return Corrupt(where + ": " + st.message());
  const std::size_t start = (end + 4 + kFlatAlign - 1) / kFlatAlign * kFlatAlign;
  const std::size_t n_data = static_cast<std::size_t>(data_bytes);
  if (start > size || size - start < 4 || size - start - 4 < n_data) {
    return Truncated(where + ": data section truncated");
  }
  const std::uint8_t* data = blob + start;
  if (transport::Crc32(data, n_data) != ReadU32(data + n_data)) {
    return IntegrityError(where + ": data CRC mismatch (corrupt file?)");
  }
  const JsonValue* tensors = header.find("tensors");
  if (tensors == nullptr || tensors->kind != JsonValue::Kind::kArray) {
    return Corrupt(where + ": no tensor table");
  }
  for (const JsonValue& t : tensors->array) {
    std::string tname;
    FlatTensor tensor;
    st = ReadTensor(t, data, data_bytes, where, &tname, &tensor);
    if (!st.ok()) return st;
    if (!out->tensors.emplace(tname, std::move(tensor)).second) {
      return Corrupt(where + ": tensor " + tname + " listed twice");
    }
  }
  return Status::Ok();
}

Status ReadFlatTensors(const std::string& path, const FlatKind& kind, FlatTensors* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(std::string("cannot read ") + kind.what + " '" + path + "'");
  const std::vector<std::uint8_t> blob((std::istreambuf_iterator<char>(in)),
                                       std::istreambuf_iterator<char>());
  if (in.bad()) return InvalidArgument(std::string("cannot read ") + kind.what + " '" + path + "'");
  return ParseFlatTensors(blob.data(), blob.size(), path, kind, out);
}

}  // namespace soundspring::flat

namespace soundspring {
namespace {

using json::JsonValue;

Status IntField(const JsonValue& cfg, const char* key, const std::string& what, std::int64_t lo,
                std::int64_t hi, int* out) {
  std::int64_t v = 0;
  Status st = json::GetInt(cfg, key, what, lo, hi, &v);
  if (st.ok()) *out = static_cast<int>(v);
  return st;
}

Status IntList(const JsonValue& cfg, const char* key, const std::string& what,
               std::vector<int>* out) {
  const JsonValue* v = cfg.find(key);
  if (v == nullptr || v->kind != JsonValue::Kind::kArray || v->array.size() > 64) {
    return InvalidArgument(what + "." + key + " must be an array of at most 64 integers");
  }
  out->clear();
  for (const JsonValue& x : v->array) {
    if (x.kind != JsonValue::Kind::kNumber || !x.integral || x.number < 0 || x.number > 1 << 20) {
      return InvalidArgument(what + "." + key + " must hold integers in [0, 2^20]");
    }
    out->push_back(static_cast<int>(x.number));
  }
  return Status::Ok();
}

}  // namespace

namespace lm {

Status LoadFlatLm(const std::string& path, const lm::EngineOptions& options, FlatLm* out) {
  if (out == nullptr) return InvalidArgument("out must not be null");
  flat::FlatTensors file;
  Status st = flat::ReadFlatTensors(path, flat::kSpringLmFlat, &file);
  if (!st.ok()) return st;
  const JsonValue& header = file.header;
  const std::string what = "flat SpringLM";
  st = json::GetString(header, "model_id", what, &out->model_id);
  if (st.ok()) st = json::GetString(header, "engine_model_id", what, &out->engine_model_id);
  if (st.ok()) st = json::GetString(header, "tokenizer_sha256", what, &out->tokenizer_sha256);
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
    st = IntField(*cfg, key, what + " config", lo, hi, field);
    if (!st.ok()) return st;
  }
  st = json::GetBool(*cfg, "tie_embeddings", what + " config", &s.tie_embeddings);
  if (!st.ok()) return st;
  auto uni = file.tensors.find("unigram_logprobs");
  if (uni == file.tensors.end()) return Corrupt("'" + path + "': no unigram_logprobs tensor");
  const std::vector<std::int64_t>& dims = uni->second.shape;
  if (dims.size() != 2 || dims[0] != s.n_codebooks || dims[1] != s.codebook_size) {
    return Corrupt("'" + path + "': unigram_logprobs must be [K_max, V]");
  }
  out->unigram = std::move(uni->second.data);
  file.tensors.erase(uni);
  return lm::Engine::Create(s, file.Map(), options, &out->engine);
}

}  // namespace lm

namespace codec {

Status LoadFlatCodec(const std::string& path, const CodecOptions& options, FlatCodec* out) {
  if (out == nullptr) return InvalidArgument("out must not be null");
  flat::FlatTensors file;
  Status st = flat::ReadFlatTensors(path, flat::kCodecDecoderFlat, &file);
  if (!st.ok()) return st;
  const JsonValue& header = file.header;
  const std::string what = "flat codec decoder";
  st = json::GetString(header, "codec_id", what, &out->codec_id);
  if (st.ok()) st = json::GetString(header, "tokenizer_sha256", what, &out->tokenizer_sha256);
  if (!st.ok()) return st;
  const JsonValue* cfg = header.find("config");
  if (cfg == nullptr || !cfg->is_object()) return Corrupt("'" + path + "': no config object");
  CodecShape& s = out->shape;
  const std::string cw = what + " config";
  for (auto [key, field, lo, hi] : {std::tuple<const char*, int*, int, int>{"latent_dim", &s.latent_dim, 1, 1 << 16},
                                    {"enc_channels", &s.enc_channels, 1, 1 << 16},
                                    {"enc_max_channels", &s.enc_max_channels, 1, 1 << 16},
                                    {"dec_dim", &s.dec_dim, 1, 1 << 16},
                                    {"dec_intermediate", &s.dec_intermediate, 1, 1 << 16},
                                    {"dec_layers", &s.dec_layers, 0, 1024},
                                    {"dec_kernel", &s.dec_kernel, 1, 1024},
                                    {"istft_hop_samples", &s.istft_hop, 1, 1 << 16},
                                    {"istft_n_fft", &s.istft_n_fft, 1, 1 << 16},
                                    {"n_codebooks", &out->n_codebooks, 1, 64},
                                    {"codebook_size", &out->codebook_size, 2, 1 << 16}}) {
    st = IntField(*cfg, key, cw, lo, hi, field);
    if (!st.ok()) return st;
  }
  st = IntList(*cfg, "enc_strides", cw, &s.enc_strides);
  if (st.ok()) st = IntList(*cfg, "enc_res_dilations", cw, &s.enc_res_dilations);
  if (!st.ok()) return st;
  auto cb = file.tensors.find("quantizer.codebooks");
  if (cb == file.tensors.end()) return Corrupt("'" + path + "': no quantizer.codebooks tensor");
  const std::vector<std::int64_t> want = {out->n_codebooks, out->codebook_size, s.latent_dim};
  if (cb->second.shape != want) return Corrupt("'" + path + "': quantizer.codebooks must be [K, V, D]");
  for (float v : cb->second.data) {
    if (!std::isfinite(v)) return Corrupt("'" + path + "': quantizer.codebooks holds a non-finite value");
  }
  out->codebooks = std::move(cb->second.data);
  file.tensors.erase(cb);
  return Decoder::Create(s, file.Map(), options, &out->decoder);
}

Status TokensToLatents(const FlatCodec& codec, const std::int64_t* tokens, int n_levels,
                       int n_frames, float* latents) {
  if (n_levels < 1 || n_levels > codec.n_codebooks || n_frames < 0) {
    return InvalidArgument("tokens: n_levels must be in [1, " + std::to_string(codec.n_codebooks) +
                           "] and n_frames >= 0");
  }
  if (n_frames > 0 && (tokens == nullptr || latents == nullptr)) return InvalidArgument("null argument");
  const std::size_t total = static_cast<std::size_t>(n_levels) * static_cast<std::size_t>(n_frames);
  for (std::size_t i = 0; i < total; ++i) {
    if (tokens[i] < 0 || tokens[i] >= codec.codebook_size) {
      return InvalidArgument("tokens: every token must be in [0, " + std::to_string(codec.codebook_size) + ")");
    }
  }
  const std::size_t d = static_cast<std::size_t>(codec.shape.latent_dim);
  const std::size_t v = static_cast<std::size_t>(codec.codebook_size);
  for (int f = 0; f < n_frames; ++f) {
    float* row = latents + static_cast<std::size_t>(f) * d;
    const float* first = codec.codebooks.data() + static_cast<std::size_t>(tokens[f]) * d;
    std::copy(first, first + d, row);
    for (int k = 1; k < n_levels; ++k) {
      const std::int64_t t = tokens[static_cast<std::size_t>(k) * static_cast<std::size_t>(n_frames) + static_cast<std::size_t>(f)];
      const float* c = codec.codebooks.data() + (static_cast<std::size_t>(k) * v + static_cast<std::size_t>(t)) * d;
      for (std::size_t j = 0; j < d; ++j) row[j] += c[j];
    }
  }
  return Status::Ok();
}

}  // namespace codec
}  // namespace soundspring
