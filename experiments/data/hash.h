// FNV-1a 64: the one checksum the runner uses (token shards, checkpoint file hashes). Not
// cryptographic; it detects truncation and corruption, which is all we need it for.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace remoe::data {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

// Continues a running hash over `n` bytes (start from kFnvOffset).
uint64_t fnv1a64(const void* bytes, size_t n, uint64_t hash = kFnvOffset);
// Hash of a whole file (throws remoe::Error if it cannot be read).
uint64_t fnv1a64_file(const std::filesystem::path& path);
// 16 lowercase hex digits.
std::string hex64(uint64_t value);

}  // namespace remoe::data
