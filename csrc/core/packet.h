// SoundSpring packets (normative description: docs/bitstream.md, "Packets").
//
// A packet is one table-of-contents byte (TOC) followed by its payload:
//
//   TOC bit  7 6 | 5 4 | 3 | 2 1 0
//            ver | lay | F | reserved (0)
//
//   ver  format version, kPacketVersion (= 2); any other value is unsupported.
//   lay  layer: 0 = base (codebooks 0-2), 1..3 = fine groups.
//   F    1 = the payload starts with an FEC block carrying a copy of the base payload of
//        an earlier (or, for a fine packet, the same) chunk.
//
// With F = 1 the payload is  fec_offset (u8) | fec_len (1 or 2 bytes) | fec bytes | primary.
// fec_offset counts chunks back (0..255; 0 = same chunk, only allowed in fine packets).
// fec_len is 1..127 in one byte (0xxxxxxx) or 128..32767 in two bytes
// (1hhhhhhh llllllll, value = h << 8 | l); the shortest form is mandatory, so an accepted
// packet re-serialises to the same bytes. Sequence numbers and timestamps are not part of
// the packet: the transport (simulator, RTP, the .spring container) carries them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace soundspring::transport {

inline constexpr std::uint8_t kPacketVersion = 2;       ///< TOC bits 7-6.
inline constexpr int kMaxLayers = 4;                     ///< layers 0..3.
inline constexpr std::size_t kMaxPacketBytes = 2048;     ///< TOC + payload, whole packet.
inline constexpr std::size_t kMaxFecBytes = 32767;       ///< largest encodable fec_len.
inline constexpr std::uint8_t kTocFecFlag = 0x08;
inline constexpr std::uint8_t kTocReservedMask = 0x07;

/// A parsed packet, or the description of one to serialise. Pointers are non-owning views.
struct PacketView {
  int layer = 0;                             ///< 0..3 (0 = base layer).
  bool has_fec = false;                      ///< the packet carries an FEC block.
  int fec_offset = 0;                        ///< chunks back, 0..255; 0 only if layer >= 1.
  const std::uint8_t* fec_payload = nullptr; ///< copied base payload (has_fec only).
  std::size_t fec_size = 0;                  ///< 1..kMaxFecBytes when has_fec, else 0.
  const std::uint8_t* payload = nullptr;     ///< primary payload of this layer (may be empty).
  std::size_t payload_size = 0;
};

/// Parses `size` bytes at `data` into `*out`, whose pointers then view into `data`.
///
/// Never reads outside [data, data + size). Errors (and `*out` is unspecified then):
///   Truncated           size == 0, or the FEC block announces more bytes than remain;
///   UnsupportedVersion  TOC version != kPacketVersion;
///   Corrupt             size > kMaxPacketBytes, reserved bits set, fec_len == 0,
///                       non-shortest fec_len, or a base packet with fec_offset 0.
/// Preconditions: `data` readable for `size` bytes (may be null iff size == 0); out != null.
Status ParsePacket(const std::uint8_t* data, std::size_t size, PacketView* out);

/// Number of bytes SerializePacket writes for `packet` (no validation).
std::size_t SerializedPacketSize(const PacketView& packet);

/// Writes `packet` to `out` (capacity `capacity` bytes) and its length to `*written`.
///
/// Errors: InvalidArgument if layer is outside 0..3, fec_offset outside 0..255 (or 0 with
/// layer 0), fec_size outside 1..kMaxFecBytes with has_fec, or the packet would exceed
/// kMaxPacketBytes; BufferTooSmall if capacity < SerializedPacketSize(packet).
/// Preconditions: payload / fec_payload readable for their sizes; written != null.
Status SerializePacket(const PacketView& packet, std::uint8_t* out, std::size_t capacity,
                       std::size_t* written);

}  // namespace soundspring::transport
