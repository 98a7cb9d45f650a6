// The log's on-disk format (storage/log.h describes it), shared by its reader
// and writer. Internal to storage/.
#pragma once

#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "storage/log.h"

namespace lattice::storage::log_format {

constexpr std::size_t kHeaderBytes = 32;
constexpr std::uint8_t kFirstInBatch = 1;
inline constexpr const char* kPrefix = "wal-";
constexpr std::size_t kHexDigits = 16;

constexpr std::size_t Padded(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
constexpr std::size_t kEndRecordBytes = Padded(kHeaderBytes + 8);

inline void PutU64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline std::uint64_t GetU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline bool KnownType(std::uint8_t t) { return (t >= 1 && t <= 6) || t == static_cast<std::uint8_t>(RecordType::kSegmentEnd); }

inline void EncodeRecord(std::string& out, RecordType type, std::uint8_t flags, std::uint64_t sequence,
                  std::uint64_t generation, std::string_view payload) {
  const std::size_t start = out.size();
  out.resize(start + Padded(kHeaderBytes + payload.size()), '\0');
  char* h = out.data() + start;
  PutU64(h + 8, sequence);
  PutU64(h + 16, generation);
  const auto length = static_cast<std::uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) h[24 + i] = static_cast<char>(length >> (8 * i));
  h[28] = static_cast<char>(type);
  h[29] = static_cast<char>(flags);
  std::copy(payload.begin(), payload.end(), h + kHeaderBytes);
  PutU64(h, XXH3_64bits(h + 8, kHeaderBytes - 8 + payload.size()));
}

struct Header {
  std::uint64_t checksum, sequence, generation;
  std::uint32_t length;
  std::uint8_t type, flags;
  std::uint16_t reserved;
};

inline Header DecodeHeader(const char* h) {
  Header d{};
  d.checksum = GetU64(h);
  d.sequence = GetU64(h + 8);
  d.generation = GetU64(h + 16);
  d.length = static_cast<std::uint32_t>(GetU64(h + 24) & 0xffffffffu);
  d.type = static_cast<std::uint8_t>(h[28]);
  d.flags = static_cast<std::uint8_t>(h[29]);
  d.reserved = static_cast<std::uint16_t>(static_cast<unsigned char>(h[30]) | static_cast<unsigned char>(h[31]) << 8);
  return d;
}

inline std::string SegmentName(std::uint64_t generation) {
  char name[32];
  std::snprintf(name, sizeof name, "%s%016llx", kPrefix, static_cast<unsigned long long>(generation));
  return name;
}

inline std::optional<std::uint64_t> ParseSegmentName(std::string_view name) {
  const std::string_view prefix = kPrefix;
  if (name.size() != prefix.size() + kHexDigits || name.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::uint64_t g = 0;
  for (char c : name.substr(prefix.size())) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    g = g << 4 | static_cast<std::uint64_t>(digit);
  }
  if (g == 0) return std::nullopt;
  return g;
}

}  // namespace lattice::storage::log_format
