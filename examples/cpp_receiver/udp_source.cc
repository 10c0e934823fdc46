#include "udp_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace soundspring::receiver {
namespace {

using json::GetInt;
using json::GetString;
using json::JsonValue;
using json::ParseJson;

constexpr std::size_t kMaxDatagram = 4096;
constexpr std::size_t kMaxEarly = 4096;
constexpr int kPayloadType = 96;
constexpr int kRtcpApp = 204;

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::uint32_t Be32(const std::uint8_t* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}

// A control message: subtype, SSRC and the JSON text (trailing spaces removed).
bool ParseControl(const std::vector<std::uint8_t>& d, int* subtype, std::uint32_t* ssrc,
                  std::string* json) {
  if (d.size() < 12 || (d[0] & 0x20) || d[1] != kRtcpApp) return false;
  const std::size_t total = 4 * (static_cast<std::size_t>((d[2] << 8) | d[3]) + 1);
  if (total != d.size() || d[8] != 'S' || d[9] != 'S' || d[10] != 'P' || d[11] != 'R') return false;
  *subtype = d[0] & 0x1F;
  *ssrc = Be32(d.data() + 4);
  std::size_t end = d.size();
  while (end > 12 && d[end - 1] == ' ') --end;
  json->assign(reinterpret_cast<const char*>(d.data()) + 12, end - 12);
  return *subtype == 0 || *subtype == 1;
}

// A data packet: seq, timestamp, SSRC and the payload range [start, end).
bool ParseRtp(const std::vector<std::uint8_t>& d, std::uint16_t* seq, std::uint32_t* ts,
              std::uint32_t* ssrc, std::size_t* start, std::size_t* end) {
  if (d.size() < 12 || (d[1] & 0x7F) != kPayloadType) return false;
  std::size_t s = 12 + 4 * static_cast<std::size_t>(d[0] & 0x0F);
  if (d[0] & 0x10) {
    if (d.size() < s + 4) return false;
    s += 4 + 4 * static_cast<std::size_t>((d[s + 2] << 8) | d[s + 3]);
  }
  std::size_t e = d.size();
  if (d[0] & 0x20) {
    if (d.back() == 0 || d.back() > e) return false;
    e -= d.back();
  }
  if (e <= s || e - s > transport::kMaxPacketBytes) return false;
  *seq = static_cast<std::uint16_t>((d[2] << 8) | d[3]);
  *ts = Be32(d.data() + 4);
  *ssrc = Be32(d.data() + 8);
  *start = s;
  *end = e;
  return true;
}

}  // namespace

Status UdpSource::Open(const std::string& host, int port, std::unique_ptr<UdpSource>* out) {
  std::unique_ptr<UdpSource> u(new UdpSource());
  u->fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (u->fd_ < 0) return InvalidArgument("cannot open a UDP socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgument("bad IPv4 address '" + host + "'");
  }
  if (::bind(u->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return InvalidArgument("cannot bind " + host + ":" + std::to_string(port));
  }
  *out = std::move(u);
  return Status::Ok();
}

UdpSource::~UdpSource() {
  if (fd_ >= 0) ::close(fd_);
}

bool UdpSource::Receive(double timeout_ms, Datagram* d) {
  pollfd p{fd_, POLLIN, 0};
  const int ms = timeout_ms <= 0 ? 0 : static_cast<int>(timeout_ms + 0.999);
  if (::poll(&p, 1, ms) <= 0) return false;
  d->bytes.resize(kMaxDatagram + 1);
  const ssize_t n = ::recv(fd_, d->bytes.data(), d->bytes.size(), 0);
  d->arrival_ms = NowMs();
  if (n < 0) return false;
  d->bytes.resize(static_cast<std::size_t>(n));
  ++stats_.datagrams;
  return true;
}

Status UdpSource::WaitSession(double timeout_s, JsonValue* stream_out) {
  const double deadline = NowMs() + 1000.0 * timeout_s;
  Datagram d;
  while (NowMs() < deadline) {
    if (!Receive(deadline - NowMs(), &d)) continue;
    if (d.bytes.size() < 2 || d.bytes.size() > kMaxDatagram || (d.bytes[0] >> 6) != 2) {
      ++stats_.malformed;
      continue;
    }
    int subtype = 0;
    std::uint32_t ssrc = 0;
    std::string json;
    if (d.bytes[1] >= 200 && d.bytes[1] <= 223) {
      if (!ParseControl(d.bytes, &subtype, &ssrc, &json)) {
        ++stats_.malformed;
        continue;
      }
      ++stats_.controls;
      if (subtype != 0) continue;
      JsonValue body;
      Status st = ParseJson(json.data(), json.size(), &body);
      if (!st.ok()) return st;
      std::string format;
      const JsonValue* stream = body.find("stream");
      const JsonValue* rtp = body.find("rtp");
      std::int64_t s = 0, base = 0;
      if (!GetString(body, "format", "session", &format).ok() || format != "soundspring-session" ||
          stream == nullptr || !stream->is_object() || rtp == nullptr ||
          !GetInt(*rtp, "ssrc", "session rtp", 0, 0xFFFFFFFFLL, &s).ok() ||
          !GetInt(*rtp, "timestamp_base", "session rtp", 0, 0xFFFFFFFFLL, &base).ok() ||
          static_cast<std::uint32_t>(s) != ssrc) {
        return Corrupt("malformed session description");
      }
      ssrc_ = ssrc;
      ts_base_ = static_cast<std::uint32_t>(base);
      have_session_ = true;
      *stream_out = *stream;
      return Status::Ok();
    }
    if (early_.size() < kMaxEarly) early_.push_back(d);
  }
  return Truncated("no session description within the timeout");
}

void UdpSource::Handle(const Datagram& d, transport::JitterBuffer* jb, int chunk_samples) {
  if (d.bytes.size() < 2 || d.bytes.size() > kMaxDatagram || (d.bytes[0] >> 6) != 2) {
    ++stats_.malformed;
    return;
  }
  if (d.bytes[1] >= 200 && d.bytes[1] <= 223) {
    int subtype = 0;
    std::uint32_t ssrc = 0;
    std::string json;
    if (!ParseControl(d.bytes, &subtype, &ssrc, &json)) {
      ++stats_.malformed;
      return;
    }
    ++stats_.controls;
    if (subtype == 1 && ssrc == ssrc_) {
      JsonValue body;
      std::int64_t n = 0, s = 0;
      if (ParseJson(json.data(), json.size(), &body).ok() &&
          GetInt(body, "n_chunks", "end", 0, INT64_C(1) << 40, &n).ok() &&
          GetInt(body, "n_samples", "end", 0, INT64_C(1) << 40, &s).ok()) {
        end_chunks_ = n;
        end_samples_ = s;
      }
    }
    return;
  }
  std::uint16_t seq = 0;
  std::uint32_t ts = 0, ssrc = 0;
  std::size_t start = 0, end = 0;
  if (!ParseRtp(d.bytes, &seq, &ts, &ssrc, &start, &end)) {
    ++stats_.malformed;
    return;
  }
  if (ssrc != ssrc_) {
    ++stats_.other_ssrc;
    return;
  }
  const std::uint32_t rel = ts - ts_base_;  // mod 2^32: chunk units in the jitter buffer
  if (rel % static_cast<std::uint32_t>(chunk_samples) != 0) {
    ++stats_.off_grid;
    return;
  }
  transport::PushOutcome po;
  (void)jb->Push(seq, rel / static_cast<std::uint32_t>(chunk_samples), d.arrival_ms,
                 d.bytes.data() + start, end - start, &po);
}

Status UdpSource::Run(transport::JitterBuffer* jb, int chunk_samples, double idle_timeout_s,
                      const std::function<void(const transport::PlayoutChunk&)>& play) {
  for (const Datagram& d : early_) Handle(d, jb, chunk_samples);
  early_.clear();
  std::vector<transport::PlayoutChunk> due;
  double last_heard = NowMs();
  std::int64_t played = 0;
  Datagram d;
  auto release = [&](std::vector<transport::PlayoutChunk>& chunks) {
    for (const auto& pc : chunks) {
      if (end_chunks_ >= 0 && pc.chunk >= end_chunks_) continue;
      play(pc);
      played = pc.chunk + 1;
    }
    chunks.clear();
  };
  while (true) {
    const double now = NowMs();
    due.clear();
    Status st = jb->Pop(now, 64, &due);
    if (!st.ok()) return st;
    release(due);
    if (end_chunks_ >= 0 && played >= end_chunks_) break;
    if (now - last_heard > 1000.0 * idle_timeout_s) break;
    double wait = 20.0;
    if (jb->anchored()) wait = std::max(0.0, std::min(wait, jb->Deadline(jb->next_chunk()) - now));
    if (end_chunks_ >= 0) {  // the sender is done: everything buffered plays now
      jb->Flush(&due);
      release(due);
      transport::PlayoutChunk empty;
      while (played < end_chunks_) {  // chunks after the last packet: nothing arrived
        empty.chunk = played;
        play(empty);
        played++;
      }
      break;
    }
    if (Receive(wait, &d)) {
      last_heard = d.arrival_ms;
      Handle(d, jb, chunk_samples);
    }
  }
  return Status::Ok();
}

}  // namespace soundspring::receiver
