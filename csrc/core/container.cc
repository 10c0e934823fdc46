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

Status ParseStreamHeader(const std::uint8_t* data, std::size_t size, std::size_t* json_offset,
                         std::size_t* json_size, std::size_t* records_offset) {
  for (std::size_t i = 0; i < 4; ++i) {
    if (i >= size) return Truncated("container ends inside its 4-byte magic");
    if (data[i] != kContainerMagic[i]) {
      return Corrupt("not a .spring container: the magic bytes are not \"SPRG\"");
    }
  }
  if (size < 10) return Truncated("container ends inside its stream header");
  if (data[4] != kContainerVersion) {
    return UnsupportedVersion("container format version " + std::to_string(data[4]) +
                              " is not supported (this build reads version " +
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

}  // namespace soundspring::transport
