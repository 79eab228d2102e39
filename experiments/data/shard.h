// Token shards: one file per (split), memory-mapped for reading.
//
// Layout (little-endian):
//   header, 64 bytes:
//     char[8]  magic "REMOESHD"
//     u32      version (1)
//     u32      vocab_size
//     u32      token_bytes (2 = u16 tokens when vocab_size ≤ 65536, else 4 = u32)
//     u32      reserved (0)
//     u64      n_tokens
//     u64      n_docs
//     u64      checksum  (FNV-1a 64 over the token bytes, then the document index bytes)
//     u8[16]   reserved (0)
//   tokens:    n_tokens × token_bytes
//   doc index: n_docs × DocEntry (24 bytes: u64 start, u32 n_tokens, u32 domain, u64 n_bytes)
// Each document is its tokens followed by the EOD token (counted in n_tokens of its entry);
// n_bytes is the UTF-8 length of its text (for bits-per-byte). `domain` indexes the dataset's
// domain list (dataset.json).
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace remoe::data {

struct DocEntry {
  uint64_t start = 0;
  uint32_t n_tokens = 0;
  uint32_t domain = 0;
  uint64_t n_bytes = 0;
};

// Writes a shard atomically (a temp file renamed into place by finish()). Abandoned (destroyed
// without finish) writers remove their temp file.
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path path, uint32_t vocab_size);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  // Appends one document (tokens must already end with EOD). Throws naming the bad id if a token
  // is outside [0, vocab_size).
  void add_document(std::span<const int32_t> tokens, uint32_t domain, uint64_t n_bytes);
  void finish();
  uint64_t tokens_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A read-only, memory-mapped shard. open() validates magic, version, sizes against the file size,
// and the checksum (unless verify_checksum is false), and throws remoe::Error naming the file and
// what is wrong. The file is opened O_RDONLY and mapped PROT_READ. A mapped file that is truncated
// under us would turn the next read into SIGBUS, so every read() / token() first checks (one
// fstat) that the file still has the size and modification time it had when opened, and throws a
// clear error if not; check_unchanged() does the same and also compares the header.
class Shard {
 public:
  static Shard open(const std::filesystem::path& path, bool verify_checksum = true);
  Shard(Shard&&) noexcept;
  Shard& operator=(Shard&&) noexcept;
  ~Shard();

  uint64_t n_tokens() const;
  uint64_t n_docs() const;
  uint32_t vocab_size() const;
  int32_t token(uint64_t i) const;
  // Copies tokens [start, start + out.size()) into out (as int64, the model's index dtype).
  void read(uint64_t start, std::span<int64_t> out) const;
  DocEntry doc(uint64_t i) const;
  const std::filesystem::path& path() const;
  // The largest document domain id (0 for a shard without documents); checked against the
  // manifest's domain names when a dataset is opened.
  uint32_t max_domain() const;
  // Throws remoe::Error if the file changed since open() (size, mtime or header).
  void check_unchanged() const;

 private:
  Shard();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace remoe::data
