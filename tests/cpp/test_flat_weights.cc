// Tests of csrc/core/flat_weights.h, the flat weights files of `soundspring export`
// (files built here byte for byte as soundspring.models.export.write_flat_tensors writes
// them; the real exported files against the Python receiver are tests/test_cpp_receiver.py):
// binary16 widening; float16 / float32 tensors read back exactly; each kind refuses the
// other's files; every truncation and every single-bit flip of a covered byte is refused
// without reading out of bounds; hostile headers with valid CRCs (tensors outside the data,
// overflowing shapes, repeated names, bad JSON) are refused; the codec loader builds the
// same decoder as Decoder::Create on the same tensors, sums the codebooks in level order
// and refuses missing or malformed codebooks and configs; the SpringLM loader refuses a
// missing or misshapen unigram table.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/codec_engine.h"
#include "core/crc.h"
#include "core/flat_weights.h"

namespace codec = soundspring::codec;
namespace flat = soundspring::flat;
namespace lm = soundspring::lm;
using soundspring::Status;
using soundspring::StatusCode;

namespace {

using Bytes = std::vector<std::uint8_t>;

struct Entry {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  Bytes raw;
};

void PutU32(Bytes* b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b->push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Entry F32(const std::string& name, std::vector<std::int64_t> shape, const std::vector<float>& v) {
  Entry e{name, "float32", std::move(shape), {}};
  for (float f : v) {
    std::uint32_t u = 0;
    std::memcpy(&u, &f, 4);
    PutU32(&e.raw, u);
  }
  return e;
}

Entry F16(const std::string& name, std::vector<std::int64_t> shape, const std::vector<std::uint16_t>& v) {
  Entry e{name, "float16", std::move(shape), {}};
  for (std::uint16_t h : v) {
    e.raw.push_back(static_cast<std::uint8_t>(h & 0xFF));
    e.raw.push_back(static_cast<std::uint8_t>(h >> 8));
  }
  return e;
}

std::string ShapeJson(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// The tensor table (JSON) and data section of `entries`, offsets aligned to 64 bytes.
void Pack(const std::vector<Entry>& entries, std::string* table, Bytes* data) {
  *table = "[";
  data->clear();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    *table += std::string(i ? ", " : "") + "{\"name\": \"" + e.name + "\", \"dtype\": \"" + e.dtype +
              "\", \"shape\": " + ShapeJson(e.shape) + ", \"offset\": " + std::to_string(data->size()) +
              ", \"nbytes\": " + std::to_string(e.raw.size()) + "}";
    data->insert(data->end(), e.raw.begin(), e.raw.end());
    while (data->size() % flat::kFlatAlign) data->push_back(0);
  }
  *table += "]";
}

std::string Header(const std::string& format, const std::string& extra, const std::string& table,
                   std::size_t data_bytes) {
  return "{" + extra + "\"format\": \"" + format + "\", \"version\": 1, \"data_bytes\": " +
         std::to_string(data_bytes) + ", \"tensors\": " + table + "}";
}

Bytes Assemble(const char* magic, std::uint32_t version, const std::string& json, const Bytes& data) {
  Bytes b(magic, magic + 8);
  PutU32(&b, version);
  PutU32(&b, static_cast<std::uint32_t>(json.size()));
  b.insert(b.end(), json.begin(), json.end());
  PutU32(&b, soundspring::transport::Crc32(b.data(), b.size()));
  while (b.size() % flat::kFlatAlign) b.push_back(0);
  b.insert(b.end(), data.begin(), data.end());
  PutU32(&b, soundspring::transport::Crc32(data.data(), data.size()));
  return b;
}

Bytes File(const flat::FlatKind& kind, const std::string& extra, const std::vector<Entry>& entries) {
  std::string table;
  Bytes data;
  Pack(entries, &table, &data);
  return Assemble(kind.magic, kind.version, Header(kind.format, extra, table, data.size()), data);
}

Status Parse(const Bytes& b, const flat::FlatKind& kind, flat::FlatTensors* out) {
  return flat::ParseFlatTensors(b.data(), b.size(), "test", kind, out);
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

std::string TempPath(const std::string& stem) {
  std::random_device rd;
  return (std::filesystem::temp_directory_path() /
          ("soundspring_" + stem + "_" + std::to_string(rd()) + ".bin")).string();
}

void Save(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void TestHalf() {
  using flat::HalfToFloat;
  CHECK(HalfToFloat(0x3C00) == 1.0f);
  CHECK(HalfToFloat(0xC000) == -2.0f);
  CHECK(HalfToFloat(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(HalfToFloat(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(HalfToFloat(0x7BFF) == 65504.0f);
  CHECK(std::isinf(HalfToFloat(0x7C00)) && std::isnan(HalfToFloat(0x7E00)));
  CHECK(std::signbit(HalfToFloat(0x8000)));
}

std::vector<Entry> SmallTensors() {
  return {F16("a.half", {2, 3}, {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x8000, 0x3555}),
          F32("b.float", {4}, {1.5f, -0.0f, 3.0e-38f, 12345.678f}),
          F32("c.scalar", {}, {7.0f}),
          F32("d.empty", {0, 5}, {})};
}

void TestRoundTrip() {
  const Bytes b = File(flat::kCodecDecoderFlat, "\"codec_id\": \"x\", ", SmallTensors());
  flat::FlatTensors t;
  CHECK(Parse(b, flat::kCodecDecoderFlat, &t).ok());
  CHECK(t.tensors.size() == 4);
  const flat::FlatTensor& a = t.tensors["a.half"];
  CHECK((a.shape == std::vector<std::int64_t>{2, 3}) && a.data.size() == 6);
  CHECK(a.data[0] == 1.0f && a.data[1] == -2.0f && a.data[3] == 65504.0f && std::signbit(a.data[4]));
  CHECK(SameBits(a.data[5], flat::HalfToFloat(0x3555)));
  const flat::FlatTensor& f = t.tensors["b.float"];
  CHECK(f.data.size() == 4 && SameBits(f.data[1], -0.0f) && SameBits(f.data[3], 12345.678f) &&
        SameBits(f.data[2], 3.0e-38f));
  CHECK(t.tensors["c.scalar"].shape.empty() && t.tensors["c.scalar"].data.size() == 1 &&
        t.tensors["c.scalar"].data[0] == 7.0f);
  CHECK(t.tensors["d.empty"].data.empty());
  const lm::TensorMap map = t.Map();
  CHECK(map.size() == 4 && map.at("b.float").data == f.data.data() && map.at("a.half").shape == a.shape);
  std::string id;
  CHECK(soundspring::json::GetString(t.header, "codec_id", "h", &id).ok() && id == "x");
  // the same bytes from a file; a missing file is refused
  const std::string path = TempPath("roundtrip");
  Save(path, b);
  flat::FlatTensors u;
  CHECK(flat::ReadFlatTensors(path, flat::kCodecDecoderFlat, &u).ok() && u.tensors.size() == 4);
  std::filesystem::remove(path);
  CHECK(flat::ReadFlatTensors(path, flat::kCodecDecoderFlat, &u).code() == StatusCode::kInvalidArgument);
}

void TestKinds() {
  const Bytes lm_file = File(flat::kSpringLmFlat, "", SmallTensors());
  flat::FlatTensors t;
  CHECK(Parse(lm_file, flat::kSpringLmFlat, &t).ok());
  CHECK(Parse(lm_file, flat::kCodecDecoderFlat, &t).code() == StatusCode::kInvalidArgument);
  // the right magic with the other kind's format
  std::string table;
  Bytes data;
  Pack(SmallTensors(), &table, &data);
  const Bytes mixed = Assemble(flat::kCodecDecoderFlat.magic, 1,
                               Header(flat::kSpringLmFlat.format, "", table, data.size()), data);
  CHECK(Parse(mixed, flat::kCodecDecoderFlat, &t).code() == StatusCode::kInvalidArgument);
  const Bytes v2 = Assemble(flat::kCodecDecoderFlat.magic, 2,
                            Header(flat::kCodecDecoderFlat.format, "", table, data.size()), data);
  CHECK(Parse(v2, flat::kCodecDecoderFlat, &t).code() == StatusCode::kUnsupportedVersion);
  CHECK(!flat::ParseFlatTensors(nullptr, 0, "empty", flat::kCodecDecoderFlat, &t).ok());
}

void TestTruncationAndBitFlips() {
  const Bytes b = File(flat::kCodecDecoderFlat, "", SmallTensors());
  flat::FlatTensors t;
  bool all_refused = true;
  for (std::size_t n = 0; n < b.size(); ++n) {
    const Bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
    all_refused = all_refused && !Parse(cut, flat::kCodecDecoderFlat, &t).ok();
  }
  CHECK(all_refused);
  // CRC-32 catches every single-bit error in the bytes it covers; the padding between
  // the header CRC and the data is covered by neither and changes nothing read.
  const std::size_t json_len = b[12] | (b[13] << 8) | (b[14] << 16) | (static_cast<std::size_t>(b[15]) << 24);
  const std::size_t header_end = 16 + json_len + 4;
  const std::size_t data_start = (header_end + flat::kFlatAlign - 1) / flat::kFlatAlign * flat::kFlatAlign;
  bool flips_ok = true;
  for (std::size_t i = 0; i < b.size(); ++i) {
    Bytes bad = b;
    bad[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
    const bool ok = Parse(bad, flat::kCodecDecoderFlat, &t).ok();
    const bool padding = i >= header_end && i < data_start;
    flips_ok = flips_ok && (ok == padding);
  }
  CHECK(flips_ok);
  // trailing bytes after the data CRC are not part of the file's content
  Bytes longer = b;
  longer.push_back(0);
  CHECK(Parse(longer, flat::kCodecDecoderFlat, &t).ok());
}

// One header whose tensor table (and data_bytes) are given, with valid CRCs.
Status Hostile(const std::string& table, long long data_bytes, std::size_t data_size = 64) {
  const Bytes data(data_size, 0);
  const std::string json = Header(flat::kCodecDecoderFlat.format, "", table,
                                  static_cast<std::size_t>(data_bytes < 0 ? 0 : data_bytes));
  std::string text = json;
  if (data_bytes < 0) {  // a negative count, written as such
    const std::string key = "\"data_bytes\": 0";
    text.replace(text.find(key), key.size(), "\"data_bytes\": " + std::to_string(data_bytes));
  }
  flat::FlatTensors t;
  const Bytes b = Assemble(flat::kCodecDecoderFlat.magic, 1, text, data);
  return Parse(b, flat::kCodecDecoderFlat, &t);
}

std::string One(const std::string& dtype, const std::string& shape, const std::string& offset,
                const std::string& nbytes, const std::string& name = "t") {
  return "{\"name\": \"" + name + "\", \"dtype\": \"" + dtype + "\", \"shape\": " + shape +
         ", \"offset\": " + offset + ", \"nbytes\": " + nbytes + "}";
}

void TestHostileHeaders() {
  CHECK(Hostile("[" + One("float32", "[4, 4]", "0", "64") + "]", 64).ok());  // the baseline
  const Status cases[] = {
      Hostile("[" + One("float32", "[4, 4]", "0", "60") + "]", 64),          // nbytes != shape
      Hostile("[" + One("float32", "[4, 4]", "4", "64") + "]", 64),          // past the end
      Hostile("[" + One("float32", "[4]", "65", "16") + "]", 64),            // offset past data
      Hostile("[" + One("float32", "[4]", "-1", "16") + "]", 64),            // negative offset
      Hostile("[" + One("float32", "[17179869184, 17179869184]", "0", "0") + "]", 64),  // 2^68
      Hostile("[" + One("float32", "[4294967296, 4294967296, 4294967296]", "0", "0") + "]", 64),
      Hostile("[" + One("float32", "[-4]", "0", "16") + "]", 64),            // negative dim
      Hostile("[" + One("float32", "[2.5]", "0", "10") + "]", 64),           // fractional dim
      Hostile("[" + One("float32", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "0", "4") + "]", 64),  // 9 dims
      Hostile("[" + One("float32", "4", "0", "16") + "]", 64),               // shape not array
      Hostile("[" + One("int64", "[2]", "0", "16") + "]", 64),               // dtype
      Hostile("[" + One("float32", "[4]", "0", "16") + ", " + One("float32", "[4]", "0", "16") + "]", 64),
      Hostile("[7]", 64),                                                    // entry not an object
      Hostile("{}", 64),                                                     // table not an array
      Hostile("[" + One("float32", "[4]", "0", "16") + "]", 128),            // data_bytes > file
      Hostile("[" + One("float32", "[4]", "0", "16") + "]", 1LL << 41),      // absurd data_bytes
      Hostile("[" + One("float32", "[4]", "0", "16") + "]", -64),            // negative data_bytes
      Hostile("[" + One("float32", "[4]", "0", "16") + "", 64),              // bad JSON
  };
  int refused = 0;
  for (const Status& st : cases) refused += st.ok() ? 0 : 1;
  CHECK(refused == static_cast<int>(std::size(cases)));
  // a JSON value that is not an object, and an empty header
  flat::FlatTensors t;
  const Bytes data(0);
  CHECK(!Parse(Assemble(flat::kCodecDecoderFlat.magic, 1, "[1, 2]", data), flat::kCodecDecoderFlat, &t).ok());
  CHECK(!Parse(Assemble(flat::kCodecDecoderFlat.magic, 1, "", data), flat::kCodecDecoderFlat, &t).ok());
}

// A small decoder of the Vocos family (hop 4, lookahead 2) with its codebooks.
struct TinyCodec {
  codec::CodecShape shape;
  std::vector<Entry> entries;
  std::map<std::string, std::vector<float>> store;
  lm::TensorMap map;
  std::vector<std::uint16_t> codebook_bits;  // [K = 3, V = 5, D = 4] binary16
  std::mt19937 gen{5};

  void Add(const std::string& name, std::vector<std::int64_t> dims, float scale, float offset = 0.0f) {
    std::size_t count = 1;
    for (std::int64_t d : dims) count *= static_cast<std::size_t>(d);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float>& v = store[name];
    v.resize(count);
    for (float& f : v) f = offset + dist(gen);
    map[name] = lm::TensorRef{v.data(), dims};
    entries.push_back(F32(name, dims, v));
  }

  TinyCodec() {
    shape.latent_dim = 4;
    shape.enc_channels = 2;
    shape.enc_max_channels = 4;
    shape.enc_strides = {2, 2};
    shape.enc_res_dilations = {1};
    shape.dec_dim = 6;
    shape.dec_intermediate = 8;
    shape.dec_layers = 1;
    shape.dec_kernel = 3;
    shape.istft_hop = 2;
    shape.istft_n_fft = 4;
    Add("decoder.inp.conv.weight", {6, 4, 3}, 0.3f);
    Add("decoder.inp.conv.bias", {6}, 0.05f);
    Add("decoder.norm_in.weight", {6}, 0.1f, 1.0f);
    Add("decoder.norm_in.bias", {6}, 0.1f);
    Add("decoder.blocks.0.dw.conv.weight", {6, 1, 3}, 0.4f);
    Add("decoder.blocks.0.dw.conv.bias", {6}, 0.05f);
    Add("decoder.blocks.0.norm.weight", {6}, 0.1f, 1.0f);
    Add("decoder.blocks.0.norm.bias", {6}, 0.1f);
    Add("decoder.blocks.0.pw1.weight", {8, 6}, 0.4f);
    Add("decoder.blocks.0.pw1.bias", {8}, 0.05f);
    Add("decoder.blocks.0.pw2.weight", {6, 8}, 0.35f);
    Add("decoder.blocks.0.pw2.bias", {6}, 0.05f);
    Add("decoder.blocks.0.gamma", {6}, 0.3f);
    Add("decoder.norm_out.weight", {6}, 0.1f, 1.0f);
    Add("decoder.norm_out.bias", {6}, 0.1f);
    Add("decoder.head.weight", {12, 6}, 0.3f);  // sub 2 x 2 x bins 3
    Add("decoder.head.bias", {12}, 0.1f);
    for (int i = 0; i < 3 * 5 * 4; ++i) {
      codebook_bits.push_back(static_cast<std::uint16_t>((0x2E00 + 97 * i) | (i % 3 ? 0x8000 : 0)));
    }
  }

  std::string Config(const std::string& strides = "[2, 2]") const {
    return "\"config\": {\"latent_dim\": 4, \"enc_channels\": 2, \"enc_max_channels\": 4, "
           "\"enc_strides\": " + strides + ", \"enc_res_dilations\": [1], \"dec_dim\": 6, "
           "\"dec_intermediate\": 8, \"dec_layers\": 1, \"dec_kernel\": 3, "
           "\"istft_hop_samples\": 2, \"istft_n_fft\": 4, \"n_codebooks\": 3, "
           "\"codebook_size\": 5, \"ema_decay\": 0.99}, ";
  }

  Bytes File(const std::string& meta, bool with_codebooks = true, std::vector<std::int64_t> cb_shape = {3, 5, 4},
             const std::vector<std::uint16_t>* bits = nullptr) const {
    std::vector<Entry> all = entries;
    if (with_codebooks) all.push_back(F16("quantizer.codebooks", cb_shape, bits ? *bits : codebook_bits));
    return ::File(flat::kCodecDecoderFlat, meta, all);
  }
  std::string Meta() const { return Config() + "\"codec_id\": \"c0dec\", \"tokenizer_sha256\": \"70ce\", "; }
};

Status LoadBytes(const Bytes& b, codec::FlatCodec* out) {
  const std::string path = TempPath("codec");
  Save(path, b);
  const Status st = codec::LoadFlatCodec(path, {}, out);
  std::filesystem::remove(path);
  return st;
}

void TestCodec() {
  const TinyCodec m;
  codec::FlatCodec fc;
  const Status st = LoadBytes(m.File(m.Meta()), &fc);
  CHECK(st.ok());
  if (!st.ok()) {
    std::printf("LoadFlatCodec: %s\n", st.message().c_str());
    return;
  }
  CHECK(fc.codec_id == "c0dec" && fc.tokenizer_sha256 == "70ce");
  CHECK(fc.n_codebooks == 3 && fc.codebook_size == 5 && fc.codebooks.size() == 60);
  CHECK(fc.decoder->hop() == 4 && fc.decoder->lookahead() == 2 && fc.decoder->latent_dim() == 4);
  bool widened = true;
  for (std::size_t i = 0; i < fc.codebooks.size(); ++i) {
    widened = widened && SameBits(fc.codebooks[i], flat::HalfToFloat(m.codebook_bits[i]));
  }
  CHECK(widened);

  // tokens [n_levels, C] -> latents [C, D]: level 0's row, then + level 1, + level 2
  const int c = 3;
  const std::int64_t tokens[3 * c] = {0, 4, 2, 1, 1, 3, 4, 0, 2};
  for (int levels = 1; levels <= 3; ++levels) {
    std::vector<float> lat(static_cast<std::size_t>(c * 4), -1.0f);
    CHECK(codec::TokensToLatents(fc, tokens, levels, c, lat.data()).ok());
    bool same = true;
    for (int f = 0; f < c; ++f) {
      for (int j = 0; j < 4; ++j) {
        float want = fc.codebooks[static_cast<std::size_t>((0 * 5 + tokens[f]) * 4 + j)];
        for (int k = 1; k < levels; ++k) want += fc.codebooks[static_cast<std::size_t>((k * 5 + tokens[k * c + f]) * 4 + j)];
        same = same && SameBits(lat[static_cast<std::size_t>(f * 4 + j)], want);
      }
    }
    CHECK(same);
  }
  std::vector<float> lat(static_cast<std::size_t>(c * 4), -1.0f);
  const std::int64_t bad_tokens[3] = {0, 5, 1};
  CHECK(codec::TokensToLatents(fc, bad_tokens, 1, c, lat.data()).code() == StatusCode::kInvalidArgument);
  const std::int64_t negative[3] = {0, -1, 1};
  CHECK(!codec::TokensToLatents(fc, negative, 1, c, lat.data()).ok());
  CHECK(lat[0] == -1.0f);  // untouched
  CHECK(!codec::TokensToLatents(fc, tokens, 0, c, lat.data()).ok());
  CHECK(!codec::TokensToLatents(fc, tokens, 4, c, lat.data()).ok());

  // the decoder equals Decoder::Create on the same tensors, bit for bit
  std::unique_ptr<codec::Decoder> ref;
  CHECK(codec::Decoder::Create(m.shape, m.map, {}, &ref).ok());
  if (!ref) return;
  codec::DecoderState a, b;
  fc.decoder->NewState(&a);
  ref->NewState(&b);
  bool same = true;
  double energy = 0.0;
  for (int step = 0; step < 4; ++step) {
    std::int64_t tk[3 * c];
    for (int i = 0; i < 3 * c; ++i) tk[i] = (i * 7 + step * 3) % 5;
    CHECK(codec::TokensToLatents(fc, tk, 3, c, lat.data()).ok());
    std::vector<float> wa(static_cast<std::size_t>(c * 4)), wb(wa.size());
    CHECK(fc.decoder->Step(&a, lat.data(), c, wa.data()).ok());
    CHECK(ref->Step(&b, lat.data(), c, wb.data()).ok());
    for (std::size_t i = 0; i < wa.size(); ++i) {
      same = same && SameBits(wa[i], wb[i]);
      energy += double(wa[i]) * wa[i];
    }
  }
  std::vector<float> ta(2), tb(2);
  CHECK(fc.decoder->Flush(a, ta.data()).ok() && ref->Flush(b, tb.data()).ok());
  CHECK(same && SameBits(ta[0], tb[0]) && SameBits(ta[1], tb[1]));
  CHECK(std::isfinite(energy) && energy > 0.0);

  // refused: no codebooks, misshapen or non-finite codebooks, a bad config, no codec_id,
  // a missing decoder tensor, a SpringLM file
  codec::FlatCodec x;
  CHECK(LoadBytes(m.File(m.Meta(), false), &x).code() == StatusCode::kCorrupt);
  CHECK(LoadBytes(m.File(m.Meta(), true, {3, 4, 5}), &x).code() == StatusCode::kCorrupt);
  std::vector<std::uint16_t> nan_bits = m.codebook_bits;
  nan_bits[17] = 0x7E00;
  CHECK(LoadBytes(m.File(m.Meta(), true, {3, 5, 4}, &nan_bits), &x).code() == StatusCode::kCorrupt);
  CHECK(!LoadBytes(m.File(m.Config("[2, 2.5]") + "\"codec_id\": \"c\", \"tokenizer_sha256\": \"t\", "), &x).ok());
  CHECK(!LoadBytes(m.File(m.Config("[3]") + "\"codec_id\": \"c\", \"tokenizer_sha256\": \"t\", "), &x).ok());
  CHECK(!LoadBytes(m.File(m.Config() + "\"tokenizer_sha256\": \"t\", "), &x).ok());
  CHECK(!LoadBytes(m.File("\"codec_id\": \"c\", \"tokenizer_sha256\": \"t\", "), &x).ok());
  TinyCodec missing;
  missing.entries.erase(missing.entries.begin() + 3);  // decoder.norm_in.bias
  CHECK(LoadBytes(missing.File(missing.Meta()), &x).code() == StatusCode::kInvalidArgument);
  CHECK(LoadBytes(::File(flat::kSpringLmFlat, m.Meta(), m.entries), &x).code() == StatusCode::kInvalidArgument);
}

void TestLmUnigram() {
  // LoadFlatLm checks the unigram table before it builds the engine
  const std::string meta =
      "\"config\": {\"n_codebooks\": 2, \"codebook_size\": 4, \"base_codebooks\": 1, \"dim\": 4, "
      "\"n_layers\": 1, \"n_heads\": 1, \"ffn_mult\": 2, \"max_context_frames\": 0, "
      "\"max_rel_distance\": 4, \"tie_embeddings\": true}, \"model_id\": \"m\", "
      "\"engine_model_id\": \"m+engine1\", \"tokenizer_sha256\": \"t\", ";
  const std::string path = TempPath("lm");
  lm::FlatLm out;
  Save(path, File(flat::kSpringLmFlat, meta, {}));
  CHECK(lm::LoadFlatLm(path, {}, &out).code() == StatusCode::kCorrupt);  // no unigram table
  Save(path, File(flat::kSpringLmFlat, meta, {F32("unigram_logprobs", {2, 3}, std::vector<float>(6, -1.0f))}));
  CHECK(lm::LoadFlatLm(path, {}, &out).code() == StatusCode::kCorrupt);  // [K_max, V] expected
  Save(path, File(flat::kSpringLmFlat, meta, {F32("unigram_logprobs", {2, 4}, std::vector<float>(8, -1.0f))}));
  CHECK(!lm::LoadFlatLm(path, {}, &out).ok() && out.unigram.size() == 8);  // the engine's tensors are missing
  Save(path, File(flat::kCodecDecoderFlat, meta, {}));
  CHECK(lm::LoadFlatLm(path, {}, &out).code() == StatusCode::kInvalidArgument);  // another kind
  std::filesystem::remove(path);
}

}  // namespace

int main() {
  TestHalf();
  TestRoundTrip();
  TestKinds();
  TestTruncationAndBitFlips();
  TestHostileHeaders();
  TestCodec();
  TestLmUnigram();
  return soundspring_test::report("test_flat_weights");
}
