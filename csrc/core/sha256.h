// SHA-256 (FIPS 180-4) as lowercase hex: the C++ receiver (examples/cpp_receiver) checks
// every artifact it loads against the export manifest's hash, as the Python loader
// soundspring.models.export.verify_manifest does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace soundspring {

/// Hex SHA-256 of `size` bytes at `data`.
std::string Sha256Hex(const std::uint8_t* data, std::size_t size);

/// Hex SHA-256 of the file at `path`; false when it cannot be read.
bool Sha256File(const std::string& path, std::string* hex, std::uint64_t* bytes);

}  // namespace soundspring
