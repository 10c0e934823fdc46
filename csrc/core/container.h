// The .spring file container (normative description: docs/bitstream.md, "Container").
//
// All integers little-endian.
//
//   stream header  magic "SPRG" (4) | version u8 (=1) | reserved u8 (=0) |
//                  json_len u32 (0..kMaxHeaderJsonBytes) | json bytes | crc32 u32
//                  (the CRC covers every header byte before it)
//   records        sync 0x5A 0xA5 (2) | len u16 (1..kMaxPacketBytes) | seq u32 | chunk u32 |
//                  packet (len bytes) | crc32 u32 over len, seq, chunk and packet
//
// The JSON is opaque bytes here (Python parses it). A record is accepted only when its sync,
// length and CRC are all valid; after damage the reader scans forward byte by byte to the
// next valid record, so every intact record before and after a damaged region is recovered
// and the damaged byte ranges are reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/status.h"

namespace soundspring::transport {

inline constexpr std::uint8_t kContainerMagic[4] = {'S', 'P', 'R', 'G'};
inline constexpr std::uint8_t kContainerVersion = 1;
inline constexpr std::size_t kMaxHeaderJsonBytes = 65536;
inline constexpr std::size_t kStreamHeaderFixedBytes = 14;  ///< 10 before the JSON + CRC.
inline constexpr std::uint8_t kRecordSync0 = 0x5A;
inline constexpr std::uint8_t kRecordSync1 = 0xA5;
inline constexpr std::size_t kRecordOverheadBytes = 16;     ///< sync+len+seq+chunk+crc.

/// One intact record; `packet_offset` indexes the container bytes (no copy is made).
struct ContainerRecord {
  std::uint32_t seq = 0;            ///< transport sequence number (any u32).
  std::uint32_t chunk = 0;          ///< chunk index (RTP-style timestamp in chunk units).
  std::size_t record_offset = 0;    ///< byte offset of the record's sync marker.
  std::size_t packet_offset = 0;    ///< byte offset of the packet.
  std::size_t packet_size = 0;      ///< 1..kMaxPacketBytes.
};

/// A byte range [offset, offset + size) of the record area that holds no valid record.
struct DamageRegion {
  std::size_t offset = 0;
  std::size_t size = 0;
};

/// Appends the stream header for `json_size` bytes of JSON to `*out`.
/// Errors: InvalidArgument if json_size > kMaxHeaderJsonBytes.
/// Preconditions: `json` readable for json_size bytes; out != null.
Status AppendStreamHeader(const std::uint8_t* json, std::size_t json_size,
                          std::vector<std::uint8_t>* out);

/// Appends one record to `*out`. `seq` and `chunk` are any u32 values.
/// Errors: InvalidArgument if packet_size is 0 or > kMaxPacketBytes (the packet bytes are
/// not parsed: the container is agnostic of the packet format).
/// Preconditions: `packet` readable for packet_size bytes; out != null.
Status AppendRecord(std::uint32_t seq, std::uint32_t chunk, const std::uint8_t* packet,
                    std::size_t packet_size, std::vector<std::uint8_t>* out);

/// Parses the stream header at the start of `data`.
/// On success `*json_offset`/`*json_size` locate the JSON bytes and `*records_offset` the
/// first record. Errors: Corrupt (bad magic, reserved byte set, json_len too large),
/// Truncated (fewer bytes than the header announces, including a prefix of the magic),
/// UnsupportedVersion (version != kContainerVersion), Integrity (header CRC mismatch).
/// Never reads outside [data, data + size).
Status ParseStreamHeader(const std::uint8_t* data, std::size_t size, std::size_t* json_offset,
                         std::size_t* json_size, std::size_t* records_offset);

/// Scans the record area data[records_offset, size) and appends every valid record to
/// `*records` and every maximal run of bytes that is not part of a valid record to
/// `*damage` (in file order). Never fails: damage is data, not an error. Work is at most
/// O((size - records_offset) * kMaxPacketBytes) even for adversarial input.
/// Preconditions: records_offset <= size; records, damage != null.
void ScanRecords(const std::uint8_t* data, std::size_t size, std::size_t records_offset,
                 std::vector<ContainerRecord>* records, std::vector<DamageRegion>* damage);

}  // namespace soundspring::transport
