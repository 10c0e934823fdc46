// Live input of the C++ receiver: RTP datagrams on a UDP port, the layout `soundspring
// send` writes (python/soundspring/net/rtp.py: RFC 3550 header, payload type 96, timestamp
// in 16 kHz samples from the session's timestamp_base; the session description and the end
// of stream as RTCP APP "SSPR" packets, subtypes 0 and 1, on the same port).
//
// Every datagram is parsed strictly and bounds-checked; a malformed one, another SSRC or a
// timestamp off a chunk boundary is counted and dropped, never fatal. POSIX sockets only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/jitter_buffer.h"
#include "core/status.h"
#include "core/json_reader.h"

namespace soundspring::receiver {

struct UdpStats {
  std::uint64_t datagrams = 0, malformed = 0, other_ssrc = 0, off_grid = 0, controls = 0;
};

class UdpSource {
 public:
  /// Binds host:port (IPv4). Errors: InvalidArgument naming the address.
  static Status Open(const std::string& host, int port, std::unique_ptr<UdpSource>* out);
  ~UdpSource();
  UdpSource(const UdpSource&) = delete;
  UdpSource& operator=(const UdpSource&) = delete;

  /// Waits up to timeout_s for a session description; returns its "stream" object (the
  /// .spring stream header). Data datagrams arriving first are kept (at most 4096) and
  /// replayed by Run. Errors: Truncated (timeout), Corrupt (bad description).
  Status WaitSession(double timeout_s, json::JsonValue* stream);

  /// Receives until the end-of-stream message has come and every chunk before its n_chunks
  /// was released, or nothing arrived for idle_timeout_s; pushes each data packet into `jb`
  /// with its arrival time and calls `play` for every chunk the buffer releases, in order
  /// (chunks nothing arrived for included).
  Status Run(transport::JitterBuffer* jb, int chunk_samples, double idle_timeout_s,
             const std::function<void(const transport::PlayoutChunk&)>& play);

  const UdpStats& stats() const { return stats_; }
  /// n_samples of the end-of-stream message (-1 before it came).
  std::int64_t end_samples() const { return end_samples_; }

 private:
  UdpSource() = default;
  struct Datagram {
    std::vector<std::uint8_t> bytes;
    double arrival_ms = 0.0;
  };
  bool Receive(double timeout_ms, Datagram* d);
  void Handle(const Datagram& d, transport::JitterBuffer* jb, int chunk_samples);

  int fd_ = -1;
  bool have_session_ = false;
  std::uint32_t ssrc_ = 0, ts_base_ = 0;
  std::vector<Datagram> early_;
  std::int64_t end_chunks_ = -1, end_samples_ = -1;
  UdpStats stats_;
};

}  // namespace soundspring::receiver
