#include "core/packet.h"

#include <cstring>
#include <string>

namespace soundspring::transport {
namespace {

std::size_t FecLenBytes(std::size_t fec_size) { return fec_size < 128 ? 1 : 2; }

}  // namespace

Status ParsePacket(const std::uint8_t* data, std::size_t size, PacketView* out) {
  if (size == 0) return Truncated("packet is empty: expected at least the 1-byte TOC");
  const std::uint8_t toc = data[0];
  const int version = toc >> 6;
  if (version != kPacketVersion) {
    return UnsupportedVersion("packet format version " + std::to_string(version) +
                              " is not supported (this build reads version " +
                              std::to_string(kPacketVersion) + ")");
  }
  if (size > kMaxPacketBytes) {
    return Corrupt("packet of " + std::to_string(size) + " bytes exceeds the maximum of " +
                   std::to_string(kMaxPacketBytes));
  }
  if (toc & kTocReservedMask) return Corrupt("packet TOC has reserved bits 2-0 set");
  PacketView p;
  p.layer = (toc >> 4) & 0x3;
  p.has_fec = (toc & kTocFecFlag) != 0;
  std::size_t pos = 1;
  if (p.has_fec) {
    if (size < pos + 2) return Truncated("packet ends inside its FEC block header");
    p.fec_offset = data[pos++];
    std::size_t len = data[pos++];
    if (len & 0x80) {
      if (pos >= size) return Truncated("packet ends inside its 2-byte FEC length");
      len = ((len & 0x7Fu) << 8) | data[pos++];
      if (len < 128) return Corrupt("FEC length below 128 must use the 1-byte form");
    }
    if (len == 0) return Corrupt("FEC block of length 0");
    if (p.layer == 0 && p.fec_offset == 0) {
      return Corrupt("a base packet cannot carry an FEC copy of its own chunk (offset 0)");
    }
    if (len > size - pos) {
      return Truncated("FEC block announces " + std::to_string(len) + " bytes, " +
                       std::to_string(size - pos) + " remain");
    }
    p.fec_payload = data + pos;
    p.fec_size = len;
    pos += len;
  }
  p.payload = data + pos;
  p.payload_size = size - pos;
  *out = p;
  return Status::Ok();
}

std::size_t SerializedPacketSize(const PacketView& packet) {
  std::size_t n = 1 + packet.payload_size;
  if (packet.has_fec) n += 1 + FecLenBytes(packet.fec_size) + packet.fec_size;
  return n;
}

Status SerializePacket(const PacketView& p, std::uint8_t* out, std::size_t capacity,
                       std::size_t* written) {
  if (p.layer < 0 || p.layer >= kMaxLayers) {
    return InvalidArgument("layer must be in [0, 3], got " + std::to_string(p.layer));
  }
  if (p.has_fec) {
    if (p.fec_offset < 0 || p.fec_offset > 255) {
      return InvalidArgument("fec_offset must be in [0, 255], got " +
                             std::to_string(p.fec_offset));
    }
    if (p.layer == 0 && p.fec_offset == 0) {
      return InvalidArgument("a base packet (layer 0) needs fec_offset >= 1");
    }
    if (p.fec_size == 0 || p.fec_size > kMaxFecBytes) {
      return InvalidArgument("FEC payload must be 1.." + std::to_string(kMaxFecBytes) +
                             " bytes, got " + std::to_string(p.fec_size));
    }
  }
  const std::size_t n = SerializedPacketSize(p);
  if (n > kMaxPacketBytes) {
    return InvalidArgument("packet would be " + std::to_string(n) + " bytes; the maximum is " +
                           std::to_string(kMaxPacketBytes));
  }
  if (capacity < n) return BufferTooSmall("packet needs " + std::to_string(n) + " bytes");
  std::size_t pos = 0;
  out[pos++] = static_cast<std::uint8_t>((kPacketVersion << 6) | (p.layer << 4) |
                                         (p.has_fec ? kTocFecFlag : 0));
  if (p.has_fec) {
    out[pos++] = static_cast<std::uint8_t>(p.fec_offset);
    if (p.fec_size < 128) {
      out[pos++] = static_cast<std::uint8_t>(p.fec_size);
    } else {
      out[pos++] = static_cast<std::uint8_t>(0x80u | (p.fec_size >> 8));
      out[pos++] = static_cast<std::uint8_t>(p.fec_size & 0xFFu);
    }
    std::memcpy(out + pos, p.fec_payload, p.fec_size);
    pos += p.fec_size;
  }
  if (p.payload_size) std::memcpy(out + pos, p.payload, p.payload_size);
  *written = pos + p.payload_size;
  return Status::Ok();
}

}  // namespace soundspring::transport
