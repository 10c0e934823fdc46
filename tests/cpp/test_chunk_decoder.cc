// Tests of the torch-free pieces of the C++ receiver in csrc/core: the JSON reader, SHA-256,
// the integrity value (golden values from Python: hashlib, zlib and
// soundspring.entropy.chunk.integrity_value) and the chunk decoder's base payloads (coded
// here with the core range encoder exactly as ChunkCoder.encode_base codes them; the
// decoding of real SpringLM packets against the Python coder is tests/test_cpp_receiver.py).
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "core/cdf.h"
#include "core/chunk_decoder.h"
#include "core/json_reader.h"
#include "core/range_coder.h"
#include "core/sha256.h"

namespace en = soundspring::entropy;
namespace js = soundspring::json;

namespace {

bool Parses(const std::string& s, js::JsonValue* v) { return js::ParseJson(s.data(), s.size(), v).ok(); }

void TestJson() {
  js::JsonValue v;
  CHECK(Parses("{\"a\": [1, 2.5, -3e2], \"b\": {\"c\": \"x\\u00e9\\ud83d\\ude00\"}, \"t\": true, "
               "\"n\": null}", &v));
  CHECK(v.find("a")->array.size() == 3 && v.find("a")->array[0].integral &&
        !v.find("a")->array[1].integral && v.find("a")->array[2].number == -300.0);
  CHECK(v.find("b")->find("c")->string == "x\xc3\xa9\xf0\x9f\x98\x80");
  std::int64_t i = 0;
  bool b = false;
  CHECK(js::GetBool(v, "t", "t", &b).ok() && b);
  CHECK(!js::GetInt(v, "t", "t", 0, 1, &i).ok());   // a boolean is no integer
  CHECK(!js::GetInt(v, "a", "a", 0, 1, &i).ok());   // nor an array
  CHECK(js::ParseJson("{\"k\": 7}", 8, &v).ok() && js::GetInt(v, "k", "k", 0, 7, &i).ok() && i == 7);
  CHECK(!js::GetInt(v, "k", "k", 0, 6, &i).ok());   // out of range
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "01", "\"\\x\"", "{\"a\" 1}", "1 2",
                          "\"\\ud800\"", "nul", "1e999", "[\"a\nb\"]", "-", "1.", "{\"a\":1,}"}) {
    CHECK(!Parses(bad, &v));
  }
  const std::string deep(100, '[');
  CHECK(!Parses(deep + std::string(100, ']'), &v));  // deeper than kMaxJsonDepth
  CHECK(Parses(std::string(60, '[') + std::string(60, ']'), &v));
}

void TestSha256() {
  const std::string abc = "abc";
  CHECK(soundspring::Sha256Hex(reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(soundspring::Sha256Hex(nullptr, 0) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string million(1000000, 'a');
  CHECK(soundspring::Sha256Hex(reinterpret_cast<const std::uint8_t*>(million.data()),
                               million.size()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

void TestIntegrityValue() {
  // integrity_value(np.array([[1, 2], [3, 4], [5, 6]]), np.array([[1023, 0]]), 2, 16) == 4893
  const std::int64_t base[6] = {1, 2, 3, 4, 5, 6};
  const std::int64_t fine[2] = {1023, 0};
  CHECK(en::IntegrityValue(base, 2, fine, 2, 2, 16) == 4893u);
  CHECK(en::IntegrityValue(base, 2, fine, 2, 2, 8) == (4893u & 0xFFu));
}

// A base payload as ChunkCoder.encode_base writes it: frame-major base symbols with the
// static CDFs, then the check in pieces of <= 8 bits.
std::vector<std::uint8_t> EncodeBase(const std::vector<float>& unigram, const std::int64_t* base,
                                     int c, int check_bits, int p) {
  std::vector<float> q(3 * 1024);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::nearbyint(unigram[i] * 64.0f) / 64.0f;
  std::vector<std::uint32_t> cdfs(3 * 1025);
  CHECK(soundspring::cdf_from_logits(q.data(), 3, 1024, p, cdfs.data()).ok());
  std::vector<std::uint8_t> out(4096);
  soundspring::RangeEncoder enc(out.data(), out.size());
  for (int f = 0; f < c; ++f) {
    for (int l = 0; l < 3; ++l) enc.encode(static_cast<std::int32_t>(base[l * c + f]), cdfs.data() + l * 1025, 1024, p);
  }
  const std::uint32_t value = en::IntegrityValue(base, c, nullptr, 0, en::kBaseCheckSalt, check_bits);
  int shift = check_bits;
  for (int bits : {8, 8}) {
    const int piece = std::min(bits, shift);
    if (piece <= 0) break;
    shift -= piece;
    std::vector<std::uint32_t> u((1u << piece) + 1);
    for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<std::uint32_t>(i) << (p - piece);
    enc.encode(static_cast<std::int32_t>((value >> shift) & ((1u << piece) - 1u)), u.data(), 1 << piece, p);
  }
  CHECK(enc.finish().ok());
  out.resize(enc.bytes_written());
  return out;
}

void TestBaseRoundTrip() {
  const int c = 3, k_max = 24;
  std::vector<float> unigram(static_cast<std::size_t>(k_max) * 1024);
  for (std::size_t i = 0; i < unigram.size(); ++i) {
    unigram[i] = -7.0f - 0.003f * static_cast<float>(i % 1024) + 0.5f * std::sin(0.01f * static_cast<float>(i));
  }
  for (int check_bits : {8, 12, 16}) {
    en::ChunkSettings s;
    s.n_codebooks = 3;
    s.chunk_frames = c;
    s.check_bits = check_bits;
    std::unique_ptr<en::ChunkDecoder> dec;
    CHECK(en::ChunkDecoder::Create(s, nullptr, unigram.data(), &dec).ok());
    CHECK(dec->n_layers() == 1 && dec->combined_base_check());
    const std::int64_t base[9] = {0, 1023, 17, 512, 3, 999, 44, 45, 46};
    const std::vector<std::uint8_t> payload = EncodeBase(unigram, base, c, check_bits, 16);
    std::int64_t got[9] = {};
    CHECK(dec->DecodeBase(payload.data(), payload.size(), got).ok());
    CHECK(std::equal(base, base + 9, got));
    en::DecodedTokens chunk;  // a base-only combined payload is the same bytes
    soundspring::lm::StreamState none;
    CHECK(dec->DecodeChunk(none, payload.data(), payload.size(), &chunk).ok());
    CHECK(chunk.n_levels == 3 && std::equal(base, base + 9, chunk.tokens.begin()));
    int refused = 0;
    for (std::size_t i = 0; i < payload.size(); ++i) {  // every one-byte corruption
      std::vector<std::uint8_t> bad = payload;
      bad[i] ^= 0x5A;
      refused += !dec->DecodeBase(bad.data(), bad.size(), got).ok();
    }
    CHECK(refused >= static_cast<int>(payload.size()) - 1);
    CHECK(!dec->DecodeBase(payload.data(), payload.size() / 2, got).ok());
  }
  en::ChunkSettings fine;
  fine.n_codebooks = 12;
  std::unique_ptr<en::ChunkDecoder> dec;
  CHECK(!en::ChunkDecoder::Create(fine, nullptr, unigram.data(), &dec).ok());  // needs the LM
  fine.n_codebooks = 7;
  CHECK(!en::ChunkDecoder::Create(fine, nullptr, unigram.data(), &dec).ok());
}

}  // namespace

int main() {
  TestJson();
  TestSha256();
  TestIntegrityValue();
  TestBaseRoundTrip();
  return soundspring_test::report("test_chunk_decoder");
}
