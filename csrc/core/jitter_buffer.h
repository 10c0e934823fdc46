// Receiver jitter buffer / depacketiser: packets in (any order, duplicated, late), one
// PlayoutChunk per chunk out, in playout order. Normative behaviour: docs/bitstream.md,
// "Jitter buffer". The one depacketiser of the transceiver: files, simulations and live
// sockets all go through it.
//
// Timing (clocked mode, the default). The playout clock is anchored at
// (anchor_chunk, anchor_time_ms): either given in the configuration or taken from the first
// pushed packet (its chunk and arrival time). Chunk k must be complete by its deadline
//     deadline(k) = anchor_time_ms + (k - anchor_chunk) * chunk_ms + playout_delay_ms;
// a packet arriving after its chunk's deadline (arrival_ms > deadline) is late, i.e. lost.
// Pop(now_ms) releases, in order, every chunk whose deadline is <= now_ms, including chunks
// nothing arrived for (their mask is empty). Flush() releases every chunk up to the highest
// one buffered, whatever the time; ReleaseNext() releases the next chunk, whatever the time.
//
// Unclocked mode (clocked = false: files and simulations, decoded as fast as the CPU goes).
// There are no deadlines: arrival times are ignored, the playout point starts at
// anchor_chunk (0 unless has_anchor), chunks are released on demand (ReleaseNext, Flush)
// and a packet is late only once its chunk was released.
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
// FEC: the first FEC copy of chunk j = k - fec_offset's base payload that arrives while j is
// held (and on time) is kept beside j's primary base payload. At release (and Peek) a chunk
// whose primary base did not arrive takes the copy as its base (base_from_fec); the copy is
// also handed out on its own (fec_copy), so a decoder can fall back to it when the primary
// fails its integrity check.
//
// Losses declared by the transport (MarkLost): the layer's payload is discarded and a copy
// that still arrives is late. Damaged packets (Offer: unparsable, or a layer the stream does
// not have) are counted on their chunk.
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
  bool clocked = true;              ///< false: no deadlines, chunks released on demand.
};

enum class PushOutcome : int {
  kAccepted = 0,       ///< stored (also: an original base beside its FEC copy).
  kDuplicate = 1,      ///< its (chunk, layer) is already held; dropped.
  kLate = 2,           ///< after its chunk's deadline, already released, or declared lost.
  kTooEarly = 3,       ///< beyond the window; dropped.
  kUnusedLayer = 4,    ///< layer >= num_layers; dropped (Push only).
  kDamaged = 5,        ///< Offer only: unparsable or layer >= num_layers; counted on its chunk.
};

struct JitterStats {
  std::uint64_t pushed = 0, accepted = 0, duplicates = 0, late = 0, too_early = 0,
                unused_layer = 0, reordered = 0, fec_applied = 0, released = 0, damaged = 0,
                marked_lost = 0;
};

/// One released (or peeked) chunk. payloads[l] is the payload of layer l (empty if absent):
/// the primary one, or for layer 0 the FEC copy when base_from_fec.
struct PlayoutChunk {
  std::int64_t chunk = 0;                ///< unwrapped chunk index.
  std::uint32_t received_mask = 0;       ///< bit l set iff layer l is present.
  bool base_from_fec = false;            ///< layer 0 came from an FEC copy.
  std::array<std::vector<std::uint8_t>, kMaxLayers> payloads;
  bool has_fec_copy = false;             ///< an FEC copy of the base arrived (fec_copy).
  std::vector<std::uint8_t> fec_copy;    ///< that copy (also when the primary arrived).
  std::uint32_t lost_mask = 0;           ///< bit l set iff layer l was declared lost.
  std::uint32_t late_packets = 0;        ///< dropped as late while held, or discarded by MarkLost.
  std::uint32_t damaged_packets = 0;     ///< Offer: damaged packets of this chunk.
  std::uint64_t version = 0;             ///< changes whenever the held chunk changes.
};

class JitterBuffer {
 public:
  /// Errors: InvalidArgument naming the first field out of its range (see JitterConfig).
  static Status Create(const JitterConfig& config, std::unique_ptr<JitterBuffer>* out);

  /// Offers one packet. `seq`: any u16; `chunk`: any u32; arrival_ms finite (ignored when
  /// unclocked). Errors: the packet parser's (Truncated, Corrupt, UnsupportedVersion) and
  /// InvalidArgument for a non-finite arrival time; the buffer is unchanged then.
  Status Push(std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
              const std::uint8_t* packet, std::size_t size, PushOutcome* outcome);

  /// As Push, but bytes never fail: a packet that does not parse, or names a layer
  /// >= num_layers, is kDamaged and counted on its chunk (damaged_packets) when that chunk
  /// could still take a packet (else kLate / kTooEarly, as any packet). `*chunk_out`
  /// (may be null) receives the unwrapped chunk index. Errors: InvalidArgument for a
  /// non-finite arrival time (buffer unchanged).
  Status Offer(std::uint16_t seq, std::uint32_t chunk, double arrival_ms,
               const std::uint8_t* packet, std::size_t size, PushOutcome* outcome,
               std::int64_t* chunk_out);

  /// Declares the packet with sequence number `seq` lost, numbering packets
  /// seq = (chunk * num_layers + layer) mod 2^16 (the transceiver's). `seq` is unwrapped to
  /// the nearest packet at or after the playout point; a packet behind it, beyond the
  /// window, or any before the playout point is set is ignored (returns false). A payload
  /// held for it is discarded (counted late), and a copy that still arrives is late.
  bool MarkLost(std::uint16_t seq);

  /// Appends to `*out` every chunk due by now_ms (deadline <= now_ms), at most max_chunks.
  /// Errors: InvalidArgument if now_ms is NaN or the buffer is unclocked. Nothing is due
  /// before the clock is anchored.
  Status Pop(double now_ms, std::size_t max_chunks, std::vector<PlayoutChunk>* out);

  /// Appends the next chunk (whatever the time) and advances the playout point. Before
  /// the playout point is set (clocked, no packet yet) it starts at anchor_chunk (0 unless
  /// configured); the first packet then anchors only the clock.
  void ReleaseNext(std::vector<PlayoutChunk>* out);

  /// Appends every chunk from the playout point to the highest chunk buffered.
  void Flush(std::vector<PlayoutChunk>* out);

  /// Copies held chunk `chunk` (unwrapped) into `*out` without releasing it, as Release
  /// would hand it out; false if nothing is held for it.
  bool Peek(std::int64_t chunk, PlayoutChunk* out) const;

  /// The version of held chunk `chunk` (what Peek's PlayoutChunk::version would say, without
  /// copying its payloads); false if nothing is held for it.
  bool Version(std::int64_t chunk, std::uint64_t* version) const;

  /// Moves the playout point forward to `chunk` (unwrapped), discarding what is held before
  /// it (counted neither released nor late): a receiver joining a stream midway. Errors:
  /// InvalidArgument if `chunk` is behind the playout point (buffer unchanged).
  Status SkipTo(std::int64_t chunk);

  /// Replaces this buffer's whole state by `other`'s (a snapshot made with Clone()).
  /// Errors: InvalidArgument if the two configurations differ (buffer unchanged).
  Status RestoreFrom(const JitterBuffer& other);

  /// An independent copy of the whole state (a snapshot).
  std::unique_ptr<JitterBuffer> Clone() const;

  /// Restores the state right after Create().
  void Reset();

  /// The playout point is set (a packet arrived, a chunk was released, or configured).
  bool anchored() const { return anchored_; }
  /// Deadlines are defined (clocked, and the clock is anchored).
  bool clock_anchored() const { return clock_set_; }
  std::int64_t next_chunk() const { return next_; }
  /// The chunk index nearest the playout point congruent to `chunk` mod 2^32.
  std::int64_t UnwrapChunk(std::uint32_t chunk) const;
  double Deadline(std::int64_t chunk) const;
  /// Chunks held (anything arrived or was declared for them) from the playout point on.
  std::size_t held_chunks() const;
  const JitterStats& stats() const { return stats_; }
  const JitterConfig& config() const { return config_; }

 private:
  struct Slot {
    std::int64_t chunk = -1;
    std::uint32_t mask = 0;          // primary payloads held
    std::uint32_t lost = 0;          // layers declared lost
    bool has_fec = false;
    std::uint32_t late = 0;
    std::uint32_t damaged = 0;
    std::uint64_t version = 0;
    std::array<std::vector<std::uint8_t>, kMaxLayers> payloads;
    std::vector<std::uint8_t> fec;
    /// Forgets what the slot holds (its chunk index is the caller's to set).
    void Clear() {
      mask = lost = 0;
      has_fec = false;
      late = damaged = 0;
    }
  };
  explicit JitterBuffer(const JitterConfig& config);
  JitterBuffer(const JitterBuffer&) = default;
  JitterBuffer& operator=(const JitterBuffer&) = default;
  Slot& SlotFor(std::int64_t chunk);
  const Slot* Held(std::int64_t chunk) const;
  void Touch(Slot& s) { s.version = ++changes_; }
  void Position(std::int64_t chunk);
  // Anchors what the packet for `chunk` anchors and unwraps it; kLate / kTooEarly, or
  // kAccepted when the chunk may take a packet (`*k` is then its index).
  PushOutcome Admit(std::uint32_t chunk, double arrival_ms, std::int64_t* k);
  void NoteLate(std::int64_t k);
  void Release(std::vector<PlayoutChunk>* out);

  JitterConfig config_;
  std::vector<Slot> slots_;
  bool anchored_ = false;          // playout point set
  bool clock_set_ = false;         // deadlines defined
  std::int64_t anchor_chunk_ = 0;
  double anchor_time_ms_ = 0.0;
  std::int64_t next_ = 0;          // next chunk to release
  std::int64_t highest_ = -1;      // highest chunk buffered (< next_ when none)
  bool seq_seen_ = false;
  std::int64_t max_seq_ = 0;
  std::uint64_t changes_ = 0;      // version counter for held chunks
  JitterStats stats_;
};

}  // namespace soundspring::transport
