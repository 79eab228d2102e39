#include "experiments/data/hash.h"

#include <cstdio>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace remoe::data {

uint64_t fnv1a64(const void* bytes, size_t n, uint64_t hash) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * kPrime;
  return hash;
}

uint64_t fnv1a64_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REMOE_CHECK(in, "fnv1a64_file: cannot open ", path.string());
  std::vector<char> buffer(1 << 20);
  uint64_t hash = kFnvOffset;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash = fnv1a64(buffer.data(), static_cast<size_t>(in.gcount()), hash);
  }
  REMOE_CHECK(in.eof(), "fnv1a64_file: read error in ", path.string());
  return hash;
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace remoe::data
