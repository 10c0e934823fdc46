// Receiver jitter buffer / depacketiser: packets in (any order, duplicated, late), one
// PlayoutChunk per chunk out, in playout order. Normative behaviour: docs/bitstream.md,
// "Jitter buffer".
//
// Timing. The playout clock is anchored at (anchor_chunk, anchor_time_ms): either given in
// the configuration or taken from the first pushed packet (its chunk and arrival time).
// Chunk k must be complete by its deadline
//     deadline(k) = anchor_time_ms + (k - anchor_chunk) * chunk_ms + playout_delay_ms;
// a packet arriving after its chunk's deadline (arrival_ms > deadline) is late, i.e. lost.
// Pop(now_ms) releases, in order, every chunk whose deadline is <= now_ms, including chunks
// nothing arrived for (their mask is empty). Flush() releases every chunk up to the highest
// one buffered, whatever the time.
//
// Window. At most window_chunks chunks are buffered beyond the playout point (the next
// chunk to release): a packet for a chunk >= next + window_chunks is dropped (kTooEarly).
// Callers release due chunks (Pop) before pushing packets that arrived later.
//
// Sequence numbers are 16-bit and chunk indices 32-bit (RTP-style timestamps in chunk
// units); both are unwrapped to 64 bits by serial-number arithmetic around the playout point
// (chunk) and the highest sequence number seen (seq), so they may wrap freely.
//
// Duplicates: a second packet for a (chunk, layer) already held is dropped (kDuplicate).
// FEC: a packet's FEC copy of chunk k - fec_offset's base payload fills that chunk's base
// layer if it is still buffered, on time, and its base has not arrived; an original base
// packet arriving later replaces the copy.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/packet.h"
#include "core/status.h"

namespace soundspring::transport {

struct JitterConfig {
  int num_layers = 1;               ///< layers expected per chunk, 1..4.
  double chunk_ms = 40.0;           ///< chunk duration, (0, 1000].
  double playout_delay_ms = 60.0;   ///< added delay before a chunk's deadline, [0, 60000].
  int window_chunks = 64;           ///< chunks buffered beyond the playout point, 1..65536.
  bool has_anchor = false;          ///< use anchor_chunk/anchor_time_ms below.
  std::uint32_t anchor_chunk = 0;   ///< first chunk to play (any u32).
  double anchor_time_ms = 0.0;      ///< arrival-clock time of anchor_chunk (finite).
};

enum class PushOutcome : int {
  kAccepted = 0,       ///< stored (also: an original base replacing its FEC copy).
  kDuplicate = 1,      ///< its (chunk, layer) is already held; dropped.
  kLate = 2,           ///< after its chunk's deadline or already released; dropped.
  kTooEarly = 3,       ///< beyond the window; dropped.
  kUnusedLayer = 4,    ///< layer >= num_layers; dropped.
};

struct JitterStats {
  std::uint64_t pushed = 0, accepted = 0, duplicates = 0, late = 0, too_early = 0,
                unused_layer = 0, reordered = 0, fec_applied = 0, released = 0;
};

/// One released chunk. payloads[l] is the primary payload of layer l (empty if absent).
struct PlayoutChunk {
  std::int64_t chunk = 0;                ///< unwrapped chunk index.
  std::uint32_t received_mask = 0;       ///< bit l set iff layer l is present.
  bool base_from_fec = false;            ///< layer 0 came from an FEC copy.
  std::array<std::vector<std::uint8_t>, kMaxLayers> payloads;
};

class JitterBuffer {
 public:
  /// Errors: InvalidArgument naming the first field out of its range (see JitterConfig).
  static Status Create(const JitterConfig& config, std::unique_ptr<JitterBuffer>* out);

  /// Offers one packet. `seq`: any u16; `chunk`: any u32; arrival_ms finite.
  /// Errors: the packet parser's (Truncated, Corrupt, UnsupportedVersion) and
  /// InvalidArgument for a non-finite arrival time; the buffer is unchanged then.
  Status Push(std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
              const std::uint8_t* packet, std::size_t size, PushOutcome* outcome);

  /// Appends to `*out` every chunk due by now_ms (deadline <= now_ms), at most max_chunks.
  /// Errors: InvalidArgument if now_ms is NaN. Nothing is due before the clock is anchored.
  Status Pop(double now_ms, std::size_t max_chunks, std::vector<PlayoutChunk>* out);

  /// Appends every chunk from the playout point to the highest chunk buffered.
  void Flush(std::vector<PlayoutChunk>* out);

  /// Restores the state right after Create().
  void Reset();

  bool anchored() const { return anchored_; }
  std::int64_t next_chunk() const { return next_; }
  double Deadline(std::int64_t chunk) const;
  const JitterStats& stats() const { return stats_; }
  const JitterConfig& config() const { return config_; }

 private:
  struct Slot {
    std::int64_t chunk = -1;
    std::uint32_t mask = 0;
    bool base_from_fec = false;
    std::array<std::vector<std::uint8_t>, kMaxLayers> payloads;
  };
  explicit JitterBuffer(const JitterConfig& config);
  Slot& SlotFor(std::int64_t chunk);
  void Release(std::vector<PlayoutChunk>* out);

  JitterConfig config_;
  std::vector<Slot> slots_;
  bool anchored_ = false;
  std::int64_t anchor_chunk_ = 0;
  double anchor_time_ms_ = 0.0;
  std::int64_t next_ = 0;          // next chunk to release
  std::int64_t highest_ = -1;      // highest chunk buffered (< next_ when none)
  bool seq_seen_ = false;
  std::int64_t max_seq_ = 0;
  JitterStats stats_;
};

}  // namespace soundspring::transport
