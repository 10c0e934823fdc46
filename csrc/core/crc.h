// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit-identical to zlib's crc32()
// and Python's zlib.crc32(). Used by the .spring container to protect its stream header and
// every record, so that a reader can tell an intact record from damaged bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace soundspring::transport {

/// Returns the CRC-32 of `size` bytes at `data`, continuing from `crc` (the CRC of the bytes
/// before them; 0 to start). Crc32(b, n2, Crc32(a, n1)) == Crc32(a ++ b, n1 + n2).
///
/// Preconditions: `data` points to `size` readable bytes (`data` may be null iff size == 0).
std::uint32_t Crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);

}  // namespace soundspring::transport
