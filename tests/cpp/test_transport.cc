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
  CHECK(buf[0] == 0xA8);  // version 2, layer 2, F
  PacketView q;
  CHECK(ParsePacket(buf, n, &q).ok());
  CHECK(q.layer == 2 && q.has_fec && q.fec_offset == 1 && q.fec_size == 200 && q.payload_size == 3);
  CHECK(q.payload[2] == 3 && q.fec_payload[199] == 7);
  // errors
  CHECK(ParsePacket(buf, 0, &q).code() == StatusCode::kTruncated);
  CHECK(ParsePacket(buf, 3, &q).code() == StatusCode::kTruncated);
  std::uint8_t bad_version = 0x40;  // format 1, before the base checks
  CHECK(ParsePacket(&bad_version, 1, &q).code() == StatusCode::kUnsupportedVersion);
  std::uint8_t reserved = 0x81;
  CHECK(ParsePacket(&reserved, 1, &q).code() == StatusCode::kCorrupt);
  std::uint8_t noncanon[] = {0x98, 0, 0x80, 0x05, 1, 2, 3, 4, 5};
  CHECK(ParsePacket(noncanon, sizeof noncanon, &q).code() == StatusCode::kCorrupt);
  std::uint8_t base_self[] = {0x88, 0, 1, 9};
  CHECK(ParsePacket(base_self, sizeof base_self, &q).code() == StatusCode::kCorrupt);
  std::vector<std::uint8_t> big(kMaxPacketBytes + 1, 0);
  big[0] = 0x80;
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
    std::uint8_t pkt[5] = {0x80, static_cast<std::uint8_t>(i), 1, 2, 3};
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
  std::uint8_t version = 0;
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro, &version).ok());
  CHECK(version == kContainerVersion && kContainerVersion == 2);
  file[4] = 3;
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() ==
        StatusCode::kUnsupportedVersion);
  file[4] = 0;
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() ==
        StatusCode::kUnsupportedVersion);
  file[4] = 2;
  file[10] = '[';
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() == StatusCode::kIntegrity);
  CHECK(ParseStreamHeader(file.data(), 2, &jo, &js, &ro).code() == StatusCode::kTruncated);
  file[0] = 'X';
  CHECK(ParseStreamHeader(file.data(), file.size(), &jo, &js, &ro).code() == StatusCode::kCorrupt);
}

// Rewrites the header CRC after a deliberate edit of the header bytes.
void FixHeaderCrc(std::vector<std::uint8_t>* file) {
  const std::size_t len = (*file)[6] | ((*file)[7] << 8) | ((*file)[8] << 16) |
                          (static_cast<std::size_t>((*file)[9]) << 24);
  const std::uint32_t crc = Crc32(file->data(), 10 + len);
  for (int i = 0; i < 4; ++i) (*file)[10 + len + i] = static_cast<std::uint8_t>(crc >> (8 * i));
}

std::vector<std::uint8_t> WriteWithCopies(const std::vector<std::uint8_t>& json, std::uint32_t n) {
  std::vector<std::uint8_t> file;
  ContainerWriter w;
  CHECK(w.Begin(json.data(), json.size(), &file).ok());
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint8_t pkt[3] = {0x80, static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i >> 8)};
    CHECK(w.Append(i, i, pkt, sizeof pkt, &file).ok());
  }
  CHECK(w.Finish(&file).ok());
  return file;
}

void TestHeaderCopies() {
  const char text[] = "{\"format\":\"soundspring\",\"n_samples\":16000}";
  const std::vector<std::uint8_t> json(text, text + sizeof text - 1);
  const std::size_t head = kStreamHeaderFixedBytes + json.size();
  const std::size_t copy = kRecordOverheadBytes + head;
  const std::size_t rec = kRecordOverheadBytes + 3;

  // Layout: header, copy, 1500 records, copy, 1500 records, copy, 100 records, copy.
  std::vector<std::uint8_t> big = WriteWithCopies(json, 3100);
  CHECK(big.size() == head + 4 * copy + 3100 * rec);
  ContainerLayout lay;
  CHECK(ReadContainer(big.data(), big.size(), &lay).ok());
  CHECK(lay.version == 2 && !lay.header_recovered && lay.header_copies == 4);
  CHECK(lay.records.size() == 3100 && lay.damage.empty());
  CHECK(lay.json_offset == 10 && lay.json_size == json.size());
  if (lay.records.size() == 3100) {
    CHECK(lay.records[0].record_offset == head + copy);
    CHECK(lay.records[1500].record_offset == head + 2 * copy + 1500 * rec);
  }
  // The copy after the header is a record whose payload is the stream header itself.
  std::vector<ContainerRecord> all;
  std::vector<DamageRegion> dmg;
  ScanRecords(big.data(), big.size(), head, &all, &dmg);
  CHECK(!all.empty() && IsHeaderCopy(all[0]) && all[0].packet_size == head);
  if (!all.empty()) CHECK(std::equal(big.begin(), big.begin() + head, big.begin() + 12 + head));
  // A record count that is a multiple of the interval ends with a single copy.
  CHECK(WriteWithCopies(json, 1500).size() == head + 2 * copy + 1500 * rec);
  CHECK(WriteWithCopies(json, 0).size() == head + copy);

  // Every single-bit flip of the stream header is recovered from the first copy.
  std::vector<std::uint8_t> small = WriteWithCopies(json, 20);
  int recovered = 0;
  for (std::size_t bit = 0; bit < 8 * head; ++bit) {
    std::vector<std::uint8_t> d = small;
    d[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    ContainerLayout l;
    const bool ok = ReadContainer(d.data(), d.size(), &l).ok() && l.header_recovered &&
                    l.records.size() == 20 && l.header_copy_offset == head &&
                    l.json_size == json.size() &&
                    std::equal(json.begin(), json.end(), d.begin() + l.json_offset) &&
                    !l.damage.empty() && l.damage[0].offset == 0 && l.damage[0].size == head &&
                    !l.header_error.empty();
    recovered += ok;
  }
  CHECK(recovered == static_cast<int>(8 * head));
  // The header and the first copy both gone: the closing copy stands in.
  {
    std::vector<std::uint8_t> d = small;
    for (std::size_t i = 4; i < head + copy - 3; ++i) d[i] = 0;
    ContainerLayout l;
    CHECK(ReadContainer(d.data(), d.size(), &l).ok() && l.header_recovered &&
          l.records.size() == 20 && l.header_copy_offset == d.size() - copy);
    CHECK(l.damage.size() == 1 && l.damage[0].offset == 0 && l.damage[0].size == head + copy);
  }
  // Not a container at all, and no copy: Corrupt. Truncated inside the header: Truncated.
  {
    std::vector<std::uint8_t> d(small.begin() + head + copy, small.end() - copy);
    ContainerLayout l;
    CHECK(ReadContainer(d.data(), d.size(), &l).code() == StatusCode::kCorrupt);
    CHECK(l.records.empty());
    CHECK(ReadContainer(small.data(), head - 1, &l).code() == StatusCode::kTruncated);
    CHECK(ReadContainer(small.data(), 2, &l).code() == StatusCode::kTruncated);
  }
  // An unsupported version with an intact CRC is a newer file, copies or not.
  {
    std::vector<std::uint8_t> d = small;
    d[4] = 3;
    FixHeaderCrc(&d);
    ContainerLayout l;
    CHECK(ReadContainer(d.data(), d.size(), &l).code() == StatusCode::kUnsupportedVersion);
  }
  // Version 1 files: no copies, and seq = chunk = 0xFFFFFFFF is an ordinary packet.
  {
    std::vector<std::uint8_t> d;
    CHECK(AppendStreamHeader(json.data(), json.size(), &d).ok());
    d[4] = 1;
    FixHeaderCrc(&d);
    const std::uint8_t pkt[1] = {0x80};
    CHECK(AppendRecord(kHeaderCopyMarker, kHeaderCopyMarker, pkt, 1, &d).ok());
    ContainerLayout l;
    CHECK(ReadContainer(d.data(), d.size(), &l).ok() && l.version == 1 &&
          l.records.size() == 1 && l.header_copies == 0);
    d[12] ^= 1;  // damaged v1 header: nothing to recover from
    CHECK(ReadContainer(d.data(), d.size(), &l).code() == StatusCode::kIntegrity);
  }
  // Writer rules.
  {
    ContainerWriter w;
    std::vector<std::uint8_t> out;
    const std::uint8_t pkt[1] = {0x80};
    CHECK(w.Append(0, 0, pkt, 1, &out).code() == StatusCode::kInvalidArgument);
    CHECK(w.Finish(&out).code() == StatusCode::kInvalidArgument);
    CHECK(w.Begin(json.data(), json.size(), &out).ok() && w.writes_copies());
    CHECK(w.Begin(json.data(), json.size(), &out).code() == StatusCode::kInvalidArgument);
    CHECK(w.Append(kHeaderCopyMarker, kHeaderCopyMarker, pkt, 1, &out).code() ==
          StatusCode::kInvalidArgument);
    CHECK(w.Append(kHeaderCopyMarker, 0, pkt, 1, &out).ok());
    CHECK(w.Finish(&out).ok());
    CHECK(w.Append(1, 1, pkt, 1, &out).code() == StatusCode::kInvalidArgument);
    std::vector<std::uint8_t> long_json(kMaxHeaderCopyJsonBytes + 1, ' ');
    ContainerWriter w2;
    out.clear();
    CHECK(w2.Begin(long_json.data(), long_json.size(), &out).ok() && !w2.writes_copies());
    CHECK(w2.Finish(&out).ok() && out.size() == kStreamHeaderFixedBytes + long_json.size());
    CHECK(AppendHeaderCopy(long_json.data(), long_json.size(), &out).code() ==
          StatusCode::kInvalidArgument);
  }
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
  const std::uint8_t base[] = {0x80, 0xAA};
  const std::uint8_t fine[] = {0x90, 0xBB};
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

std::vector<std::uint8_t> Pkt(int layer, std::vector<std::uint8_t> payload, int fec_offset = 0,
                              std::vector<std::uint8_t> fec = {}) {
  PacketView v;
  v.layer = layer;
  v.payload = payload.data();
  v.payload_size = payload.size();
  if (!fec.empty()) {
    v.has_fec = true;
    v.fec_offset = fec_offset;
    v.fec_payload = fec.data();
    v.fec_size = fec.size();
  }
  std::vector<std::uint8_t> out(kMaxPacketBytes);
  std::size_t n = 0;
  CHECK(SerializePacket(v, out.data(), out.size(), &n).ok());
  out.resize(n);
  return out;
}

// What the transceiver's receiver needs: unclocked release, FEC kept beside the primary,
// peeking, declared losses, damaged packets, snapshots, skipping.
void TestJitterReceiver() {
  JitterConfig c;
  c.num_layers = 2;
  c.window_chunks = 4;
  c.clocked = false;
  std::unique_ptr<JitterBuffer> jb;
  CHECK(JitterBuffer::Create(c, &jb).ok());
  CHECK(jb->anchored() && !jb->clock_anchored() && jb->next_chunk() == 0);
  PushOutcome o;
  std::int64_t k = -7;
  const auto b0 = Pkt(0, {1, 2});
  const auto b1 = Pkt(0, {3, 4}, 1, {9, 9});  // chunk 1's base with an FEC copy of chunk 0's
  const auto f1 = Pkt(1, {5});
  // unclocked: arrival times are ignored (no deadlines)
  CHECK(jb->Offer(0, 0, 1e9, b0.data(), b0.size(), &o, &k).ok() && o == PushOutcome::kAccepted);
  CHECK(k == 0);
  CHECK(jb->Offer(2, 1, -5.0, b1.data(), b1.size(), &o, &k).ok() && o == PushOutcome::kAccepted);
  CHECK(jb->Offer(3, 1, 0.0, f1.data(), f1.size(), &o, &k).ok() && o == PushOutcome::kAccepted);
  CHECK(jb->Offer(3, 1, 0.0, f1.data(), f1.size(), &o, &k).ok() && o == PushOutcome::kDuplicate);
  CHECK(jb->Offer(9, 9, 0.0, b0.data(), b0.size(), &o, &k).ok() && o == PushOutcome::kTooEarly);
  CHECK(jb->Offer(0, 0, 0.0, b0.data(), b0.size(), &o, &k).ok() && o == PushOutcome::kDuplicate);
  CHECK(!jb->Offer(0, 0, NAN, b0.data(), b0.size(), &o, &k).ok());
  std::vector<PlayoutChunk> out;
  CHECK(jb->Pop(1e12, 10, &out).code() == StatusCode::kInvalidArgument && out.empty());
  // damaged packets: unparsable bytes, or a layer the stream does not have
  const std::uint8_t junk[] = {0x00, 0x01};
  const auto l3 = Pkt(3, {7});
  CHECK(jb->Offer(4, 2, 0.0, junk, sizeof junk, &o, &k).ok() && o == PushOutcome::kDamaged);
  CHECK(k == 2);
  CHECK(jb->Offer(5, 2, 0.0, l3.data(), l3.size(), &o, &k).ok() && o == PushOutcome::kDamaged);
  CHECK(jb->Offer(4, 2, 0.0, junk, 0, &o, &k).ok() && o == PushOutcome::kDamaged);
  CHECK(jb->stats().damaged == 3 && jb->held_chunks() == 3);
  // FEC beside the primary: chunk 0 holds both; peeking does not release
  PlayoutChunk peek;
  CHECK(jb->Peek(0, &peek) && peek.has_fec_copy && !peek.base_from_fec);
  CHECK(peek.payloads[0] == std::vector<std::uint8_t>({1, 2}));
  CHECK(peek.fec_copy == std::vector<std::uint8_t>({9, 9}));
  CHECK(jb->Peek(1, &peek) && peek.received_mask == 3u && !peek.has_fec_copy);
  const std::uint64_t v1 = peek.version;
  CHECK(!jb->Peek(3, &peek) && jb->next_chunk() == 0);
  // a declared loss: seq = chunk * 2 + layer; the payload held is discarded (late)
  CHECK(jb->MarkLost(3));
  CHECK(jb->Peek(1, &peek) && peek.received_mask == 1u && peek.lost_mask == 2u);
  CHECK(peek.late_packets == 1 && peek.version != v1);
  CHECK(jb->Offer(3, 1, 0.0, f1.data(), f1.size(), &o, &k).ok() && o == PushOutcome::kLate);
  CHECK(jb->Peek(1, &peek) && peek.late_packets == 2);
  CHECK(!jb->MarkLost(60000));  // behind the playout point
  CHECK(!jb->MarkLost(8));      // chunk 4: beyond the window
  // snapshot, then diverge, then restore: the same releases as never having diverged
  std::unique_ptr<JitterBuffer> snap = jb->Clone();
  jb->ReleaseNext(&out);
  jb->ReleaseNext(&out);
  CHECK(out.size() == 2 && out[0].chunk == 0 && out[1].chunk == 1);
  CHECK(out[1].late_packets == 2 && out[1].lost_mask == 2u);
  CHECK(jb->Offer(0, 0, 0.0, b0.data(), b0.size(), &o, &k).ok() && o == PushOutcome::kLate);
  CHECK(jb->RestoreFrom(*snap).ok() && jb->next_chunk() == 0 && jb->held_chunks() == 3);
  std::vector<PlayoutChunk> again;
  jb->ReleaseNext(&again);
  jb->ReleaseNext(&again);
  jb->ReleaseNext(&again);
  CHECK(again.size() == 3 && again[0].payloads[0] == out[0].payloads[0]);
  CHECK(again[1].received_mask == out[1].received_mask && again[2].damaged_packets == 3);
  CHECK(again[2].received_mask == 0u);
  // a chunk whose primary base is lost takes the FEC copy
  const auto b4 = Pkt(0, {4}, 1, {8});
  CHECK(jb->Offer(8, 4, 0.0, b4.data(), b4.size(), &o, &k).ok() && o == PushOutcome::kAccepted);
  jb->Flush(&again);
  CHECK(again.size() == 5 && again[3].chunk == 3 && again[3].base_from_fec);
  CHECK(again[3].payloads[0] == std::vector<std::uint8_t>({8}) && again[4].chunk == 4);
  JitterConfig other = c;
  other.window_chunks = 5;
  std::unique_ptr<JitterBuffer> jb2;
  CHECK(JitterBuffer::Create(other, &jb2).ok());
  CHECK(jb->RestoreFrom(*jb2).code() == StatusCode::kInvalidArgument && jb->next_chunk() == 5);
  // skipping forward (a receiver joining midway); seq wraps mod 2^16
  CHECK(jb->SkipTo(40000).ok() && jb->next_chunk() == 40000);
  CHECK(jb->SkipTo(39999).code() == StatusCode::kInvalidArgument);
  CHECK(jb->MarkLost(static_cast<std::uint16_t>(40001 * 2)));
  CHECK(jb->Peek(40001, &peek) && peek.lost_mask == 1u && jb->held_chunks() == 1);
  CHECK(jb->Offer(static_cast<std::uint16_t>(40001 * 2), 40001, 0.0, b0.data(), b0.size(), &o, &k)
            .ok() && o == PushOutcome::kLate && k == 40001);

  // clocked: a packet after its held chunk's deadline is counted on it; ReleaseNext before
  // any packet positions the playout point, and the first packet then anchors the clock
  JitterConfig lc;
  lc.num_layers = 1;
  lc.chunk_ms = 40;
  lc.playout_delay_ms = 60;
  std::unique_ptr<JitterBuffer> live;
  CHECK(JitterBuffer::Create(lc, &live).ok());
  std::vector<PlayoutChunk> got;
  live->ReleaseNext(&got);
  CHECK(got.size() == 1 && got[0].chunk == 0 && live->anchored() && !live->clock_anchored());
  CHECK(live->Offer(3, 3, 100.0, b0.data(), b0.size(), &o, &k).ok() && o == PushOutcome::kAccepted);
  CHECK(live->clock_anchored() && live->Deadline(3) == 160.0 && live->Deadline(4) == 200.0);
  CHECK(live->Offer(4, 4, 200.5, b0.data(), b0.size(), &o, &k).ok() && o == PushOutcome::kLate);
  CHECK(live->Pop(200.0, 100, &got).ok() && got.size() == 5);
  CHECK(got[4].chunk == 4 && got[4].received_mask == 0u && got[4].late_packets == 1);
  CHECK(got[3].received_mask == 1u);
  live->Reset();
  CHECK(!live->anchored() && live->held_chunks() == 0 && live->stats().pushed == 0);
}

void Fuzz() {
  Xoshiro256ss rng(12345);
  std::vector<std::uint8_t> valid;
  const std::uint8_t json[] = {'{', '"', 'a', '"', ':', '1', '}'};
  ContainerWriter writer;
  writer.Begin(json, sizeof json, &valid);
  for (std::uint32_t i = 0; i < 8; ++i) {
    std::uint8_t pkt[6] = {static_cast<std::uint8_t>(0x80 | (i % 4) << 4), 1, 2, 3, 4, 5};
    writer.Append(i, i, pkt, sizeof pkt, &valid);
  }
  writer.Finish(&valid);
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
      if (!d.empty()) d[0] = static_cast<std::uint8_t>(0x80 | (d[0] & 0x3F));
    }
    ContainerLayout layout;
    Status st = ReadContainer(d.data(), d.size(), &layout);
    if (st.ok()) {
      std::size_t covered = 0;
      for (const auto& r : layout.records) covered += kRecordOverheadBytes + r.packet_size;
      for (const auto& g : layout.damage) covered += g.size;
      if (covered > d.size() || layout.json_offset + layout.json_size > d.size()) ++bad_codes;
    } else if (st.code() != StatusCode::kTruncated && st.code() != StatusCode::kCorrupt &&
               st.code() != StatusCode::kUnsupportedVersion &&
               st.code() != StatusCode::kIntegrity) {
      ++bad_codes;
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
    std::int64_t k = 0;
    if (!jb->Offer(static_cast<std::uint16_t>(rng.Next()),
                   static_cast<std::uint32_t>(rng.Next() % 64), static_cast<double>(iter) * 0.1,
                   d.data() + off, d.size() - off, &o, &k).ok()) {
      ++bad_codes;  // bytes never fail an Offer
    }
    if (iter % 13 == 0) jb->MarkLost(static_cast<std::uint16_t>(rng.Next()));
    PlayoutChunk peeked;
    if (jb->Peek(jb->next_chunk() + static_cast<std::int64_t>(rng.Next() % 8), &peeked) &&
        peeked.chunk < jb->next_chunk()) {
      ++bad_codes;
    }
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
  TestHeaderCopies();
  TestChannels();
  TestJitter();
  TestJitterReceiver();
  Fuzz();
  std::printf("test_transport: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
