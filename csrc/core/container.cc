#include "core/container.h"

#include <string>

#include "core/crc.h"
#include "core/packet.h"

namespace soundspring::transport {
namespace {

void PutU16(std::vector<std::uint8_t>* out, std::uint32_t v) {
  out->push_back(static_cast<std::uint8_t>(v & 0xFFu));
  out->push_back(static_cast<std::uint8_t>((v >> 8) & 0xFFu));
}

void PutU32(std::vector<std::uint8_t>* out, std::uint32_t v) {
  PutU16(out, v & 0xFFFFu);
  PutU16(out, v >> 16);
}

std::uint32_t GetU16(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8);
}

std::uint32_t GetU32(const std::uint8_t* p) { return GetU16(p) | (GetU16(p + 2) << 16); }

// True iff a valid record starts at `pos`; fills `*rec`.
bool TryRecord(const std::uint8_t* data, std::size_t size, std::size_t pos,
               ContainerRecord* rec) {
  if (size - pos < kRecordOverheadBytes) return false;
  const std::uint8_t* p = data + pos;
  if (p[0] != kRecordSync0 || p[1] != kRecordSync1) return false;
  const std::size_t len = GetU16(p + 2);
  if (len == 0 || len > kMaxPacketBytes) return false;
  if (size - pos - kRecordOverheadBytes < len) return false;
  const std::uint32_t crc = Crc32(p + 2, 10 + len);
  if (crc != GetU32(p + 12 + len)) return false;
  rec->seq = GetU32(p + 4);
  rec->chunk = GetU32(p + 8);
  rec->record_offset = pos;
  rec->packet_offset = pos + 12;
  rec->packet_size = len;
  return true;
}

// True iff data starts with 10 header bytes whose json_len and CRC are consistent (whatever
// the magic, version and reserved byte say).
bool HeaderCrcIntact(const std::uint8_t* data, std::size_t size) {
  if (size < 10) return false;
  const std::size_t len = GetU32(data + 6);
  if (len > kMaxHeaderJsonBytes || size - 10 < len + 4) return false;
  return Crc32(data, 10 + len) == GetU32(data + 10 + len);
}

}  // namespace

Status AppendStreamHeader(const std::uint8_t* json, std::size_t json_size,
                          std::vector<std::uint8_t>* out) {
  if (json_size > kMaxHeaderJsonBytes) {
    return InvalidArgument("stream header JSON is " + std::to_string(json_size) +
                           " bytes; the maximum is " + std::to_string(kMaxHeaderJsonBytes));
  }
  const std::size_t start = out->size();
  out->insert(out->end(), kContainerMagic, kContainerMagic + 4);
  out->push_back(kContainerVersion);
  out->push_back(0);
  PutU32(out, static_cast<std::uint32_t>(json_size));
  out->insert(out->end(), json, json + json_size);
  PutU32(out, Crc32(out->data() + start, out->size() - start));
  return Status::Ok();
}

Status AppendRecord(std::uint32_t seq, std::uint32_t chunk, const std::uint8_t* packet,
                    std::size_t packet_size, std::vector<std::uint8_t>* out) {
  if (packet_size == 0 || packet_size > kMaxPacketBytes) {
    return InvalidArgument("record packet must be 1.." + std::to_string(kMaxPacketBytes) +
                           " bytes, got " + std::to_string(packet_size));
  }
  out->reserve(out->size() + kRecordOverheadBytes + packet_size);
  out->push_back(kRecordSync0);
  out->push_back(kRecordSync1);
  const std::size_t crc_start = out->size();
  PutU16(out, static_cast<std::uint32_t>(packet_size));
  PutU32(out, seq);
  PutU32(out, chunk);
  out->insert(out->end(), packet, packet + packet_size);
  PutU32(out, Crc32(out->data() + crc_start, out->size() - crc_start));
  return Status::Ok();
}

Status AppendHeaderCopy(const std::uint8_t* json, std::size_t json_size,
                        std::vector<std::uint8_t>* out) {
  if (json_size > kMaxHeaderCopyJsonBytes) {
    return InvalidArgument("stream header JSON is " + std::to_string(json_size) +
                           " bytes; a header copy holds at most " +
                           std::to_string(kMaxHeaderCopyJsonBytes));
  }
  std::vector<std::uint8_t> head;
  head.reserve(kStreamHeaderFixedBytes + json_size);
  Status st = AppendStreamHeader(json, json_size, &head);
  if (!st.ok()) return st;
  return AppendRecord(kHeaderCopyMarker, kHeaderCopyMarker, head.data(), head.size(), out);
}

Status ParseStreamHeader(const std::uint8_t* data, std::size_t size, std::size_t* json_offset,
                         std::size_t* json_size, std::size_t* records_offset,
                         std::uint8_t* version) {
  for (std::size_t i = 0; i < 4; ++i) {
    if (i >= size) return Truncated("container ends inside its 4-byte magic");
    if (data[i] != kContainerMagic[i]) {
      return Corrupt("not a .spring container: the magic bytes are not \"SPRG\"");
    }
  }
  if (size < 10) return Truncated("container ends inside its stream header");
  if (data[4] < kOldestContainerVersion || data[4] > kContainerVersion) {
    return UnsupportedVersion("container format version " + std::to_string(data[4]) +
                              " is not supported (this build reads versions " +
                              std::to_string(kOldestContainerVersion) + " to " +
                              std::to_string(kContainerVersion) + ")");
  }
  if (data[5] != 0) return Corrupt("container header reserved byte is not 0");
  const std::size_t len = GetU32(data + 6);
  if (len > kMaxHeaderJsonBytes) {
    return Corrupt("stream header announces " + std::to_string(len) +
                   " JSON bytes; the maximum is " + std::to_string(kMaxHeaderJsonBytes));
  }
  if (size - 10 < len + 4) return Truncated("container ends inside its stream header");
  if (Crc32(data, 10 + len) != GetU32(data + 10 + len)) {
    return IntegrityError("stream header CRC mismatch: the header is damaged");
  }
  *json_offset = 10;
  *json_size = len;
  *records_offset = 14 + len;
  if (version != nullptr) *version = data[4];
  return Status::Ok();
}

void ScanRecords(const std::uint8_t* data, std::size_t size, std::size_t records_offset,
                 std::vector<ContainerRecord>* records, std::vector<DamageRegion>* damage) {
  std::size_t pos = records_offset;
  bool in_damage = false;
  DamageRegion region;
  while (pos < size) {
    ContainerRecord rec;
    if (TryRecord(data, size, pos, &rec)) {
      if (in_damage) {
        region.size = pos - region.offset;
        damage->push_back(region);
        in_damage = false;
      }
      records->push_back(rec);
      pos += kRecordOverheadBytes + rec.packet_size;
      continue;
    }
    if (!in_damage) {
      in_damage = true;
      region.offset = pos;
    }
    ++pos;
  }
  if (in_damage) {
    region.size = size - region.offset;
    damage->push_back(region);
  }
}

Status ReadContainer(const std::uint8_t* data, std::size_t size, ContainerLayout* out) {
  *out = ContainerLayout();
  std::size_t json_offset = 0, json_size = 0, records_offset = 0;
  std::uint8_t version = 0;
  const Status primary =
      ParseStreamHeader(data, size, &json_offset, &json_size, &records_offset, &version);
  std::vector<ContainerRecord> scanned;
  if (primary.ok()) {
    out->version = version;
    out->json_offset = json_offset;
    out->json_size = json_size;
    ScanRecords(data, size, records_offset, &scanned, &out->damage);
  } else {
    // An unknown version with an intact CRC is a genuine newer file, not damage.
    if (primary.code() == StatusCode::kUnsupportedVersion && HeaderCrcIntact(data, size)) {
      return primary;
    }
    // The primary header is damaged: every byte is a candidate record start, the header's
    // own bytes included (its json_len may be the damaged field).
    ScanRecords(data, size, 0, &scanned, &out->damage);
    bool found = false;
    for (const ContainerRecord& r : scanned) {
      if (!IsHeaderCopy(r)) continue;
      std::size_t jo = 0, js = 0, ro = 0;
      std::uint8_t v = 0;
      const std::uint8_t* copy = data + r.packet_offset;
      const Status st = ParseStreamHeader(copy, r.packet_size, &jo, &js, &ro, &v);
      if (st.ok() && ro == r.packet_size && v >= 2) {
        out->version = v;
        out->json_offset = r.packet_offset + jo;
        out->json_size = js;
        out->header_recovered = true;
        out->header_copy_offset = r.record_offset;
        out->header_error = primary.message();
        found = true;
        break;
      }
      // A well-formed copy of a newer version: the file is newer, not damaged.
      if (st.code() == StatusCode::kUnsupportedVersion && HeaderCrcIntact(copy, r.packet_size)) {
        *out = ContainerLayout();
        return st;
      }
      // Anything else is not a usable copy (a writer bug or a hostile file): skip it.
    }
    if (!found) {
      *out = ContainerLayout();
      return primary;
    }
  }
  const bool copies_reserved = out->version >= 2;
  out->records.reserve(scanned.size());
  for (const ContainerRecord& r : scanned) {
    if (copies_reserved && IsHeaderCopy(r)) {
      ++out->header_copies;
    } else {
      out->records.push_back(r);
    }
  }
  return Status::Ok();
}

Status ContainerWriter::Begin(const std::uint8_t* json, std::size_t json_size,
                              std::vector<std::uint8_t>* out) {
  if (begun_) return InvalidArgument("ContainerWriter::Begin called twice");
  Status st = AppendStreamHeader(json, json_size, out);
  if (!st.ok()) return st;
  begun_ = true;
  copies_ = json_size <= kMaxHeaderCopyJsonBytes;
  if (copies_) {
    json_.assign(json, json + json_size);
    st = AppendHeaderCopy(json_.data(), json_.size(), out);
    if (!st.ok()) return st;
    last_was_copy_ = true;
  }
  return Status::Ok();
}

Status ContainerWriter::Append(std::uint32_t seq, std::uint32_t chunk,
                               const std::uint8_t* packet, std::size_t packet_size,
                               std::vector<std::uint8_t>* out) {
  if (!begun_ || finished_) {
    return InvalidArgument("ContainerWriter::Append outside Begin..Finish");
  }
  if (seq == kHeaderCopyMarker && chunk == kHeaderCopyMarker) {
    return InvalidArgument(
        "seq and chunk are both 0xFFFFFFFF, the reserved marker of header-copy records");
  }
  Status st = AppendRecord(seq, chunk, packet, packet_size, out);
  if (!st.ok()) return st;
  last_was_copy_ = false;
  if (copies_ && ++since_copy_ == kHeaderCopyInterval) {
    since_copy_ = 0;
    st = AppendHeaderCopy(json_.data(), json_.size(), out);
    if (!st.ok()) return st;
    last_was_copy_ = true;
  }
  return Status::Ok();
}

Status ContainerWriter::Finish(std::vector<std::uint8_t>* out) {
  if (!begun_ || finished_) {
    return InvalidArgument("ContainerWriter::Finish outside Begin..Finish");
  }
  finished_ = true;
  if (copies_ && !last_was_copy_) {
    Status st = AppendHeaderCopy(json_.data(), json_.size(), out);
    if (!st.ok()) return st;
    last_was_copy_ = true;
  }
  return Status::Ok();
}

}  // namespace soundspring::transport
