// The .spring file container (normative description: docs/bitstream.md, "Container").
//
// All integers little-endian.
//
//   stream header  magic "SPRG" (4) | version u8 (=2; 1 still read) | reserved u8 (=0) |
//                  json_len u32 (0..kMaxHeaderJsonBytes) | json bytes | crc32 u32
//                  (the CRC covers every header byte before it)
//   records        sync 0x5A 0xA5 (2) | len u16 (1..kMaxPacketBytes) | seq u32 | chunk u32 |
//                  packet (len bytes) | crc32 u32 over len, seq, chunk and packet
//   header copies  (version 2) a record with seq == chunk == kHeaderCopyMarker whose payload
//                  is a byte-exact copy of the stream header; written after the header,
//                  after every kHeaderCopyInterval packet records and as the last record,
//                  when the header fits in a record (JSON <= kMaxHeaderCopyJsonBytes).
//
// The JSON is opaque bytes here (Python parses it). A record is accepted only when its sync,
// length and CRC are all valid; after damage the reader scans forward byte by byte to the
// next valid record, so every intact record before and after a damaged region is recovered
// and the damaged byte ranges are reported. A damaged stream header is recovered from the
// first intact header copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/packet.h"
#include "core/status.h"

namespace soundspring::transport {

inline constexpr std::uint8_t kContainerMagic[4] = {'S', 'P', 'R', 'G'};
inline constexpr std::uint8_t kContainerVersion = 2;        ///< the version writers emit.
inline constexpr std::uint8_t kOldestContainerVersion = 1;  ///< readers accept 1..2.
inline constexpr std::size_t kMaxHeaderJsonBytes = 65536;
inline constexpr std::size_t kStreamHeaderFixedBytes = 14;  ///< 10 before the JSON + CRC.
inline constexpr std::uint8_t kRecordSync0 = 0x5A;
inline constexpr std::uint8_t kRecordSync1 = 0xA5;
inline constexpr std::size_t kRecordOverheadBytes = 16;     ///< sync+len+seq+chunk+crc.
/// seq and chunk of a header-copy record (version 2: this pair is never a packet).
inline constexpr std::uint32_t kHeaderCopyMarker = 0xFFFFFFFFu;
/// Largest JSON whose stream header fits in one record (2048 - 14 = 2034 bytes).
inline constexpr std::size_t kMaxHeaderCopyJsonBytes = kMaxPacketBytes - kStreamHeaderFixedBytes;
/// Writers emit a header copy after every this many packet records (60 s of 40 ms chunks).
inline constexpr std::size_t kHeaderCopyInterval = 1500;

/// One intact record; `packet_offset` indexes the container bytes (no copy is made).
struct ContainerRecord {
  std::uint32_t seq = 0;            ///< transport sequence number (any u32).
  std::uint32_t chunk = 0;          ///< chunk index (RTP-style timestamp in chunk units).
  std::size_t record_offset = 0;    ///< byte offset of the record's sync marker.
  std::size_t packet_offset = 0;    ///< byte offset of the packet.
  std::size_t packet_size = 0;      ///< 1..kMaxPacketBytes.
};

/// True iff `r` carries the reserved header-copy marker (seq == chunk == 0xFFFFFFFF).
inline bool IsHeaderCopy(const ContainerRecord& r) {
  return r.seq == kHeaderCopyMarker && r.chunk == kHeaderCopyMarker;
}

/// A byte range [offset, offset + size) of the file that holds no valid record (or, when
/// the stream header was recovered from a copy, the damaged header bytes).
struct DamageRegion {
  std::size_t offset = 0;
  std::size_t size = 0;
};

/// Appends the stream header (version kContainerVersion) for `json_size` bytes of JSON.
/// Errors: InvalidArgument if json_size > kMaxHeaderJsonBytes.
/// Preconditions: `json` readable for json_size bytes; out != null.
Status AppendStreamHeader(const std::uint8_t* json, std::size_t json_size,
                          std::vector<std::uint8_t>* out);

/// Appends one record to `*out`. `seq` and `chunk` are any u32 values (AppendRecord does
/// not refuse the header-copy marker; ContainerWriter does).
/// Errors: InvalidArgument if packet_size is 0 or > kMaxPacketBytes (the packet bytes are
/// not parsed: the container is agnostic of the packet format).
/// Preconditions: `packet` readable for packet_size bytes; out != null.
Status AppendRecord(std::uint32_t seq, std::uint32_t chunk, const std::uint8_t* packet,
                    std::size_t packet_size, std::vector<std::uint8_t>* out);

/// Appends one header-copy record (payload: the stream header AppendStreamHeader writes).
/// Errors: InvalidArgument if json_size > kMaxHeaderCopyJsonBytes.
Status AppendHeaderCopy(const std::uint8_t* json, std::size_t json_size,
                        std::vector<std::uint8_t>* out);

/// Parses the stream header at the start of `data`.
/// On success `*json_offset`/`*json_size` locate the JSON bytes, `*records_offset` the
/// first record and `*version` (if not null) the container version.
/// Errors, in this order: Truncated (fewer than 4 bytes, a prefix of the magic), Corrupt
/// (bad magic), Truncated (fewer than 10 bytes), UnsupportedVersion (version outside
/// kOldestContainerVersion..kContainerVersion), Corrupt (reserved byte set, json_len too
/// large), Truncated (file ends inside the header), Integrity (header CRC mismatch).
/// Never reads outside [data, data + size).
Status ParseStreamHeader(const std::uint8_t* data, std::size_t size, std::size_t* json_offset,
                         std::size_t* json_size, std::size_t* records_offset,
                         std::uint8_t* version = nullptr);

/// Scans the record area data[records_offset, size) and appends every valid record to
/// `*records` and every maximal run of bytes that is not part of a valid record to
/// `*damage` (in file order). Never fails: damage is data, not an error. Work is at most
/// O((size - records_offset) * kMaxPacketBytes) even for adversarial input. Header-copy
/// records are returned like any other record (ReadContainer separates them).
/// Preconditions: records_offset <= size; records, damage != null.
void ScanRecords(const std::uint8_t* data, std::size_t size, std::size_t records_offset,
                 std::vector<ContainerRecord>* records, std::vector<DamageRegion>* damage);

/// A whole container as ReadContainer sees it (offsets index the container bytes).
struct ContainerLayout {
  std::uint8_t version = 0;           ///< container version of the header used.
  std::size_t json_offset = 0;        ///< the JSON of the header used (primary or copy).
  std::size_t json_size = 0;
  bool header_recovered = false;      ///< the primary header was damaged; a copy was used.
  std::size_t header_copy_offset = 0; ///< record offset of that copy (when recovered).
  std::string header_error;           ///< why the primary header was refused (when recovered).
  std::size_t header_copies = 0;      ///< intact header-copy records in the file.
  std::vector<ContainerRecord> records;  ///< packet records only, in file order.
  std::vector<DamageRegion> damage;      ///< in file order.
};

/// Reads a container: the primary stream header when it is intact, else (version 2) the
/// first intact header copy, with the damaged header bytes reported as damage.
/// Errors: those of ParseStreamHeader for the primary header when no header copy can stand
/// in for it; UnsupportedVersion when the primary header is intact (CRC matches) but of an
/// unsupported version, or when the first well-formed copy has an unsupported version.
/// Never reads outside [data, data + size); work as ScanRecords. `*out` is reset first.
Status ReadContainer(const std::uint8_t* data, std::size_t size, ContainerLayout* out);

/// Writes a version-2 container into caller-provided byte vectors, placing the header
/// copies (docs/bitstream.md, "Header copies"). Usage: Begin once, Append per packet,
/// Finish once; each call appends the bytes to emit to `*out`.
class ContainerWriter {
 public:
  /// Appends the stream header and, when the JSON fits a record, the first header copy.
  /// Errors: InvalidArgument if json_size > kMaxHeaderJsonBytes or Begin was called.
  Status Begin(const std::uint8_t* json, std::size_t json_size, std::vector<std::uint8_t>* out);
  /// Appends one packet record, then a header copy after every kHeaderCopyInterval-th.
  /// Errors: InvalidArgument before Begin / after Finish, for seq == chunk ==
  /// kHeaderCopyMarker (reserved) or a packet of 0 or > kMaxPacketBytes bytes.
  Status Append(std::uint32_t seq, std::uint32_t chunk, const std::uint8_t* packet,
                std::size_t packet_size, std::vector<std::uint8_t>* out);
  /// Appends the closing header copy unless the last record already is one.
  /// Errors: InvalidArgument before Begin or after Finish.
  Status Finish(std::vector<std::uint8_t>* out);
  bool writes_copies() const { return copies_; }

 private:
  std::vector<std::uint8_t> json_;
  bool begun_ = false;
  bool finished_ = false;
  bool copies_ = false;
  bool last_was_copy_ = false;
  std::size_t since_copy_ = 0;
};

}  // namespace soundspring::transport
