// Framework-free tests of csrc/core transport: packets, container, channels, jitter buffer,
// plus a bounded mutation fuzz loop over every parser (no crash, no out-of-bounds read
// under SOUNDSPRING_SANITIZE=ON, only documented status codes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/channel.h"
#include "core/container.h"
#include "core/crc.h"
#include "core/jitter_buffer.h"
#include "core/packet.h"

namespace {

int g_passed = 0, g_failed = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      ++g_passed;                                                          \
    } else {                                                               \
      ++g_failed;                                                          \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

using namespace soundspring;
using namespace soundspring::transport;

void TestCrc() {
  const std::uint8_t s[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(Crc32(s, 9) == 0xCBF43926u);  // the standard check value
  CHECK(Crc32(s + 4, 5, Crc32(s, 4)) == 0xCBF43926u);
}

void TestPacket() {
  const std::uint8_t pay[] = {1, 2, 3};
  std::vector<std::uint8_t> fec(200, 7);
  PacketView p;
  p.layer = 2;
  p.payload = pay;
  p.payload_size = 3;
  p.has_fec = true;
  p.fec_offset = 1;
  p.fec_payload = fec.data();
  p.fec_size = fec.size();
  std::uint8_t buf[kMaxPacketBytes];
  std::size_t n = 0;
  CHECK(SerializePacket(p, buf, sizeof buf, &n).ok());
  CHECK(n == 1 + 1 + 2 + 200 + 3);
  CHECK(buf[0] == 0x68);  // version 1, layer 2, F
  PacketView q;
  CHECK(ParsePacket(buf, n, &q).ok());
  CHECK(q.layer == 2 && q.has_fec && q.fec_offset == 1 && q.fec_size == 200 && q.payload_size == 3);
  CHECK(q.payload[2] == 3 && q.fec_payload[199] == 7);
  // errors
  CHECK(ParsePacket(buf, 0, &q).code() == StatusCode::kTruncated);
  CHECK(ParsePacket(buf, 3, &q).code() == StatusCode::kTruncated);
  std::uint8_t bad_version = 0x80;
  CHECK(ParsePacket(&bad_version, 1, &q).code() == StatusCode::kUnsupportedVersion);
  std::uint8_t reserved = 0x41;
  CHECK(ParsePacket(&reserved, 1, &q).code() == StatusCode::kCorrupt);
  std::uint8_t noncanon[] = {0x58, 0, 0x80, 0x05, 1, 2, 3, 4, 5};
  CHECK(ParsePacket(noncanon, sizeof noncanon, &q).code() == StatusCode::kCorrupt);
  std::uint8_t base_self[] = {0x48, 0, 1, 9};
  CHECK(ParsePacket(base_self, sizeof base_self, &q).code() == StatusCode::kCorrupt);
  std::vector<std::uint8_t> big(kMaxPacketBytes + 1, 0);
  big[0] = 0x40;
  CHECK(ParsePacket(big.data(), big.size(), &q).code() == StatusCode::kCorrupt);
  p.layer = 4;
  CHECK(SerializePacket(p, buf, sizeof buf, &n).code() == StatusCode::kInvalidArgument);
  p.layer = 1;
  CHECK(SerializePacket(p, buf, 10, &n).code() == StatusCode::kBufferTooSmall);
}

void TestContainer() {
  std::vector<std::uint8_t> file;
  const std::uint8_t json[] = {'{', '}'};
  CHECK(AppendStreamHeader(json, 2, &file).ok());
  const std::size_t header_end = file.size();
  for (std::uint32_t i = 0; i < 20; ++i) {
    std::uint8_t pkt[5] = {0x40, static_cast<std::uint8_t>(i), 1, 2, 3};
    CHECK(AppendRecord(i, i / 2, pkt, 5, &file).ok());
  }
  std::size_t jo = 0, js = 0, ro = 0;
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).ok());
  CHECK(js == 2 && ro == header_end);
  std::vector<ContainerRecord> recs;
  std::vector<DamageRegion> dmg;
  ScanRecords(file.data(), file.size(), ro, &recs, &dmg);
  CHECK(recs.size() == 20 && dmg.empty());
  // damage record 7 (bytes in its payload) and truncate the last record
  const std::size_t rec = kRecordOverheadBytes + 5;
  file[header_end + 7 * rec + 13] ^= 0xFF;
  file.resize(file.size() - 3);
  recs.clear();
  ScanRecords(file.data(), file.size(), ro, &recs, &dmg);
  CHECK(recs.size() == 18);
  CHECK(dmg.size() == 2);
  if (dmg.size() == 2) {
    CHECK(dmg[0].offset == header_end + 7 * rec && dmg[0].size == rec);
    CHECK(dmg[1].offset == header_end + 19 * rec && dmg[1].offset + dmg[1].size == file.size());
  }
  if (recs.size() == 18) CHECK(recs[7].seq == 8 && recs[17].seq == 18);
  file[4] = 2;
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() ==
        StatusCode::kUnsupportedVersion);
  file[4] = 1;
  file[10] = '[';
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() == StatusCode::kIntegrity);
  CHECK(ParseStreamHeader(file.data(), 2, &jo, &js, &ro).code() == StatusCode::kTruncated);
  file[0] = 'X';
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() == StatusCode::kCorrupt);
}

void TestChannels() {
  // xoshiro256** reference: seed 0 through SplitMix64 (values from the reference C code).
  std::uint64_t sm = 0;
  CHECK(SplitMix64(&sm) == 0xE220A8397B1DCDAFull);
  Xoshiro256ss a(42), b(42);
  bool same = true;
  for (int i = 0; i < 100; ++i) same = same && a.Next() == b.Next();
  CHECK(same);
  std::unique_ptr<GilbertElliottLoss> ge;
  CHECK(GilbertElliottLoss::Create(0.5, 0.5, 1, &ge).code() == StatusCode::kInvalidArgument);
  CHECK(GilbertElliottLoss::Create(0.9, 2.0, 1, &ge).code() == StatusCode::kInvalidArgument);
  CHECK(GilbertElliottLoss::Create(0.2, 4.0, 1, &ge).ok());
  std::vector<std::uint8_t> m(1000000);
  ge->Losses(m.data(), m.size());
  std::size_t lost = 0, bursts = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    lost += m[i];
    if (m[i] && (i == 0 || !m[i - 1])) ++bursts;
  }
  const double rate = static_cast<double>(lost) / 1e6;
  const double burst = static_cast<double>(lost) / static_cast<double>(bursts);
  CHECK(std::fabs(rate - 0.2) < 0.004);
  CHECK(std::fabs(burst - 4.0) < 0.08);
  CHECK(std::fabs(WlanMarkovLoss::StationaryLossRate() - 0.138318) < 1e-5);
  std::unique_ptr<BernoulliLoss> be;
  CHECK(BernoulliLoss::Create(1.5, 1, &be).code() == StatusCode::kInvalidArgument);
  std::vector<std::uint8_t> mask;
  const char text[] = "# t\n1\n 0 \r\n\n1\n";
  CHECK(TraceLoss::ParseText(reinterpret_cast<const std::uint8_t*>(text), sizeof text - 1, &mask).ok());
  CHECK(mask.size() == 3 && mask[0] == 1 && mask[1] == 0 && mask[2] == 1);
  const char bad[] = "1\n2\n";
  CHECK(TraceLoss::ParseText(reinterpret_cast<const std::uint8_t*>(bad), sizeof bad - 1, &mask)
            .code() == StatusCode::kInvalidArgument);
}

void TestJitter() {
  JitterConfig c;
  c.num_layers = 2;
  c.chunk_ms = 40;
  c.playout_delay_ms = 60;
  c.window_chunks = 8;
  std::unique_ptr<JitterBuffer> jb;
  CHECK(JitterBuffer::Create(c, &jb).ok());
  const std::uint8_t base[] = {0x40, 0xAA};
  const std::uint8_t fine[] = {0x50, 0xBB};
  PushOutcome o;
  CHECK(jb->Push(0, 0, 0.0, base, 2, &o).ok() && o == PushOutcome::kAccepted);
  CHECK(jb->Push(0, 0, 1.0, base, 2, &o).ok() && o == PushOutcome::kDuplicate);
  CHECK(jb->Push(3, 1, 30.0, fine, 2, &o).ok() && o == PushOutcome::kAccepted);
  CHECK(jb->Push(1, 0, 61.0, fine, 2, &o).ok() && o == PushOutcome::kLate);  // deadline 60
  CHECK(jb->Push(9, 100, 62.0, fine, 2, &o).ok() && o == PushOutcome::kTooEarly);
  std::vector<PlayoutChunk> out;
  CHECK(jb->Pop(60.0, 100, &out).ok());
  CHECK(out.size() == 1 && out[0].chunk == 0 && out[0].received_mask == 1u);
  jb->Flush(&out);
  CHECK(out.size() == 2 && out[1].chunk == 1 && out[1].received_mask == 2u);
  CHECK(jb->stats().reordered == 1);
}

void Fuzz() {
  Xoshiro256ss rng(12345);
  std::vector<std::uint8_t> valid;
  const std::uint8_t json[] = {'{', '"', 'a', '"', ':', '1', '}'};
  AppendStreamHeader(json, sizeof json, &valid);
  for (std::uint32_t i = 0; i < 8; ++i) {
    std::uint8_t pkt[6] = {static_cast<std::uint8_t>(0x40 | (i % 4) << 4), 1, 2, 3, 4, 5};
    AppendRecord(i, i, pkt, sizeof pkt, &valid);
  }
  JitterConfig c;
  c.num_layers = 4;
  std::unique_ptr<JitterBuffer> jb;
  JitterBuffer::Create(c, &jb);
  int bad_codes = 0;
  for (int iter = 0; iter < 200000; ++iter) {
    std::vector<std::uint8_t> d = valid;
    const int mode = static_cast<int>(rng.Next() % 3);
    if (mode == 0) {
      d.resize(rng.Next() % (d.size() + 1));
    } else if (mode == 1) {
      const int flips = 1 + static_cast<int>(rng.Next() % 8);
      for (int f = 0; f < flips; ++f) d[rng.Next() % d.size()] ^= static_cast<std::uint8_t>(1u << (rng.Next() % 8));
    } else {
      d.resize(rng.Next() % 64);
      for (auto& x : d) x = static_cast<std::uint8_t>(rng.Next());
      if (!d.empty()) d[0] = static_cast<std::uint8_t>(0x40 | (d[0] & 0x3F));
    }
    std::size_t jo, js, ro;
    Status st = ParseStreamHeader(d.data(), d.size(), &jo, &js, &ro);
    if (st.ok()) {
      std::vector<ContainerRecord> recs;
      std::vector<DamageRegion> dmg;
      ScanRecords(d.data(), d.size(), ro, &recs, &dmg);
    }
    const std::size_t off = d.empty() ? 0 : rng.Next() % d.size();
    PacketView p;
    st = ParsePacket(d.data() + off, d.size() - off, &p);
    if (!st.ok() && st.code() != StatusCode::kTruncated && st.code() != StatusCode::kCorrupt &&
        st.code() != StatusCode::kUnsupportedVersion) {
      ++bad_codes;
    }
    if (st.ok()) {
      std::uint8_t buf[kMaxPacketBytes];
      std::size_t n = 0;
      const bool round = SerializePacket(p, buf, sizeof buf, &n).ok() && n == d.size() - off &&
                         std::equal(buf, buf + n, d.data() + off);
      if (!round) ++bad_codes;
    }
    PushOutcome o;
    jb->Push(static_cast<std::uint16_t>(rng.Next()), static_cast<std::uint32_t>(rng.Next() % 64),
             static_cast<double>(iter) * 0.1, d.data() + off, d.size() - off, &o);
    if (iter % 97 == 0) {
      std::vector<PlayoutChunk> out;
      jb->Pop(static_cast<double>(iter) * 0.1, 1000, &out);
    }
  }
  CHECK(bad_codes == 0);
}

}  // namespace

int main() {
  TestCrc();
  TestPacket();
  TestContainer();
  TestChannels();
  TestJitter();
  Fuzz();
  std::printf("test_transport: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
