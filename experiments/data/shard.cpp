// Token shards (layout in shard.h): a streaming, atomic writer and a validating mmap reader.
#include "experiments/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "experiments/data/hash.h"

namespace remoe::data {

// The file is little-endian and is read by reinterpreting mapped bytes.
static_assert(std::endian::native == std::endian::little, "shards assume a little-endian host");

namespace {

constexpr char kMagic[8] = {'R', 'E', 'M', 'O', 'E', 'S', 'H', 'D'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 64;
constexpr size_t kDocEntryBytes = 24;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t vocab_size;
  uint32_t token_bytes;
  uint32_t reserved0;
  uint64_t n_tokens;
  uint64_t n_docs;
  uint64_t checksum;
  // shard.h lists u8[8] here, but its fields then add up to 56 bytes, not the stated 64: the
  // header is 64 bytes, so the reserved tail is 16.
  uint8_t reserved1[16];
};
static_assert(sizeof(Header) == kHeaderBytes);
static_assert(sizeof(DocEntry) == kDocEntryBytes);  // written and read as raw bytes

uint32_t token_bytes_for(uint32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer: tokens stream to `<path>.tmp.<pid>` behind a placeholder header; the document index
// is kept in memory and appended by finish(), which then writes the real header and renames.

struct ShardWriter::Impl {
  std::filesystem::path path, temp;
  uint32_t vocab_size = 0, token_bytes = 0;
  std::FILE* file = nullptr;
  std::vector<DocEntry> docs;
  std::vector<unsigned char> buffer;  // one document's encoded tokens
  uint64_t n_tokens = 0;
  uint64_t checksum = kFnvOffset;  // over the token bytes so far
  bool finished = false;

  // Abandoned (not finished) writes leave nothing behind; here rather than in ~ShardWriter so
  // that a constructor that throws also cleans up.
  ~Impl() {
    if (file) std::fclose(file);
    if (!finished && !temp.empty()) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
    }
  }
  void write(const void* bytes, size_t n) {
    if (n == 0) return;
    REMOE_CHECK(std::fwrite(bytes, 1, n, file) == n, "ShardWriter: cannot write ", temp.string(), ": ",
                errno_text());
  }
};

ShardWriter::ShardWriter(std::filesystem::path path, uint32_t vocab_size) : impl_(std::make_unique<Impl>()) {
  REMOE_CHECK(vocab_size > 0, "ShardWriter: vocab_size must be positive for ", path.string());
  REMOE_CHECK(vocab_size <= static_cast<uint32_t>(std::numeric_limits<int32_t>::max()),
              "ShardWriter: vocab_size ", vocab_size, " does not fit int32 ids for ", path.string());
  impl_->path = std::move(path);
  impl_->temp = impl_->path;
  impl_->temp += ".tmp." + std::to_string(::getpid());
  impl_->vocab_size = vocab_size;
  impl_->token_bytes = token_bytes_for(vocab_size);
  impl_->file = std::fopen(impl_->temp.c_str(), "wb");
  REMOE_CHECK(impl_->file, "ShardWriter: cannot create ", impl_->temp.string(), ": ", errno_text());
  Header placeholder{};
  impl_->write(&placeholder, sizeof placeholder);
}

ShardWriter::~ShardWriter() = default;

void ShardWriter::add_document(std::span<const int32_t> tokens, uint32_t domain, uint64_t n_bytes) {
  Impl& w = *impl_;
  REMOE_CHECK(!w.finished, "ShardWriter: add_document after finish() for ", w.path.string());
  REMOE_CHECK(!tokens.empty(), "ShardWriter: document ", w.docs.size(), " of ", w.path.string(),
              " is empty (it must end with the EOD token)");
  REMOE_CHECK(tokens.size() <= std::numeric_limits<uint32_t>::max(), "ShardWriter: document ", w.docs.size(),
              " of ", w.path.string(), " has ", tokens.size(), " tokens (more than a u32 can count)");
  w.buffer.resize(tokens.size() * w.token_bytes);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    REMOE_CHECK(t >= 0 && static_cast<uint32_t>(t) < w.vocab_size, "ShardWriter: token id ", t, " at position ",
                i, " of document ", w.docs.size(), " is outside [0, ", w.vocab_size, ") in ", w.path.string());
    if (w.token_bytes == 2) {
      const auto v = static_cast<uint16_t>(t);
      std::memcpy(&w.buffer[2 * i], &v, 2);
    } else {
      const auto v = static_cast<uint32_t>(t);
      std::memcpy(&w.buffer[4 * i], &v, 4);
    }
  }
  w.write(w.buffer.data(), w.buffer.size());
  w.checksum = fnv1a64(w.buffer.data(), w.buffer.size(), w.checksum);
  w.docs.push_back({w.n_tokens, static_cast<uint32_t>(tokens.size()), domain, n_bytes});
  w.n_tokens += tokens.size();
}

void ShardWriter::finish() {
  Impl& w = *impl_;
  REMOE_CHECK(!w.finished, "ShardWriter: finish() called twice for ", w.path.string());
  const size_t index_bytes = w.docs.size() * kDocEntryBytes;
  w.write(w.docs.data(), index_bytes);
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.version = kVersion;
  header.vocab_size = w.vocab_size;
  header.token_bytes = w.token_bytes;
  header.n_tokens = w.n_tokens;
  header.n_docs = w.docs.size();
  header.checksum = fnv1a64(w.docs.data(), index_bytes, w.checksum);
  REMOE_CHECK(std::fseek(w.file, 0, SEEK_SET) == 0, "ShardWriter: cannot seek in ", w.temp.string(), ": ",
              errno_text());
  w.write(&header, sizeof header);
  REMOE_CHECK(std::fflush(w.file) == 0 && ::fsync(::fileno(w.file)) == 0, "ShardWriter: cannot flush ",
              w.temp.string(), ": ", errno_text());
  const int closed = std::fclose(w.file);
  w.file = nullptr;
  REMOE_CHECK(closed == 0, "ShardWriter: cannot close ", w.temp.string(), ": ", errno_text());
  std::error_code error;
  std::filesystem::rename(w.temp, w.path, error);
  REMOE_CHECK(!error, "ShardWriter: cannot rename ", w.temp.string(), " to ", w.path.string(), ": ",
              error.message());
  w.finished = true;
}

uint64_t ShardWriter::tokens_written() const { return impl_->n_tokens; }

// ---------------------------------------------------------------------------------------------
// Reader.

struct Shard::Impl {
  std::filesystem::path path;
  int fd = -1;  // kept open to fstat the file before reads
  struct timespec mtime {};
  const unsigned char* map = nullptr;
  size_t map_bytes = 0;
  Header header{};
  const unsigned char* tokens = nullptr;
  const unsigned char* index = nullptr;
  uint32_t max_domain = 0;

  ~Impl() {
    if (map) ::munmap(const_cast<unsigned char*>(map), map_bytes);
    if (fd >= 0) ::close(fd);
  }
  // The cheap check before touching the mapping: same size and mtime as at open().
  void check_stat() const {
    struct stat st {};
    REMOE_CHECK(::fstat(fd, &st) == 0, "shard ", path.string(), ": cannot stat: ", errno_text());
    REMOE_CHECK(static_cast<uint64_t>(st.st_size) == map_bytes, "shard ", path.string(),
                ": the file changed on disk since it was opened (", map_bytes, " bytes then, ", st.st_size,
                " now); was the dataset rebuilt or the file truncated under a running job? Restart the job");
    REMOE_CHECK(st.st_mtim.tv_sec == mtime.tv_sec && st.st_mtim.tv_nsec == mtime.tv_nsec, "shard ", path.string(),
                ": the file was modified on disk since it was opened (its mtime changed); was the dataset rebuilt "
                "under a running job? Restart the job");
  }
  uint32_t raw_token(uint64_t i) const {
    if (header.token_bytes == 2) {
      uint16_t v;
      std::memcpy(&v, tokens + 2 * i, 2);
      return v;
    }
    uint32_t v;
    std::memcpy(&v, tokens + 4 * i, 4);
    return v;
  }
  DocEntry entry(uint64_t i) const {
    DocEntry e;
    std::memcpy(&e, index + i * kDocEntryBytes, kDocEntryBytes);
    return e;
  }
};

Shard::Shard() : impl_(std::make_unique<Impl>()) {}
Shard::Shard(Shard&&) noexcept = default;
Shard& Shard::operator=(Shard&&) noexcept = default;
Shard::~Shard() = default;

Shard Shard::open(const std::filesystem::path& path, bool verify_checksum) {
  Shard shard;
  Impl& s = *shard.impl_;
  s.path = path;
  const std::string name = path.string();
  s.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // closed by ~Impl, also when a check below throws
  REMOE_CHECK(s.fd >= 0, "shard ", name, ": cannot open: ", errno_text());
  struct stat st {};
  REMOE_CHECK(::fstat(s.fd, &st) == 0, "shard ", name, ": cannot stat: ", errno_text());
  s.mtime = st.st_mtim;
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  REMOE_CHECK(file_bytes >= kHeaderBytes, "shard ", name, ": truncated: ", file_bytes, " bytes, smaller than the ",
              kHeaderBytes, "-byte header");
  void* map = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, s.fd, 0);
  REMOE_CHECK(map != MAP_FAILED, "shard ", name, ": cannot mmap: ", errno_text());
  s.map = static_cast<const unsigned char*>(map);
  s.map_bytes = file_bytes;

  Header& h = s.header;
  std::memcpy(&h, s.map, kHeaderBytes);
  REMOE_CHECK(std::memcmp(h.magic, kMagic, sizeof kMagic) == 0, "shard ", name,
              ": bad magic (not a remoe token shard)");
  REMOE_CHECK(h.version == kVersion, "shard ", name, ": unsupported version ", h.version, " (expected ", kVersion,
              ")");
  REMOE_CHECK(h.vocab_size > 0 && h.vocab_size <= static_cast<uint32_t>(std::numeric_limits<int32_t>::max()),
              "shard ", name, ": bad vocab_size ", h.vocab_size);
  REMOE_CHECK(h.token_bytes == token_bytes_for(h.vocab_size), "shard ", name, ": token_bytes ", h.token_bytes,
              " does not match vocab_size ", h.vocab_size, " (expected ", token_bytes_for(h.vocab_size), ")");
  // Sizes: compare in a way that cannot overflow for absurd header values.
  const uint64_t body = file_bytes - kHeaderBytes;
  REMOE_CHECK(h.n_tokens <= body / h.token_bytes && h.n_docs <= body / kDocEntryBytes &&
                  h.n_tokens * h.token_bytes + h.n_docs * kDocEntryBytes == body,
              "shard ", name, ": size mismatch: header says ", h.n_tokens, " tokens × ", h.token_bytes, " B + ",
              h.n_docs, " docs × ", kDocEntryBytes, " B, but the file has ", body,
              " bytes after the header (truncated or corrupt)");
  s.tokens = s.map + kHeaderBytes;
  s.index = s.tokens + h.n_tokens * h.token_bytes;

  // Documents tile the token array in order: each starts where the previous one ended.
  uint64_t expected_start = 0;
  for (uint64_t i = 0; i < h.n_docs; ++i) {
    const DocEntry e = s.entry(i);
    REMOE_CHECK(e.start == expected_start && e.n_tokens > 0 && e.n_tokens <= h.n_tokens - e.start, "shard ", name,
                ": document ", i, " spans tokens [", e.start, ", ", e.start + e.n_tokens, "), expected it to start at ",
                expected_start, " and end within ", h.n_tokens, " tokens");
    expected_start += e.n_tokens;
    s.max_domain = std::max(s.max_domain, e.domain);
  }
  REMOE_CHECK(expected_start == h.n_tokens, "shard ", name, ": documents cover ", expected_start, " of ",
              h.n_tokens, " tokens");

  if (verify_checksum) {
    const uint64_t token_span = h.n_tokens * h.token_bytes;
    const uint64_t sum = fnv1a64(s.index, h.n_docs * kDocEntryBytes, fnv1a64(s.tokens, token_span));
    REMOE_CHECK(sum == h.checksum, "shard ", name, ": checksum mismatch (header ", hex64(h.checksum),
                ", data ", hex64(sum), "): the file is corrupt");
    for (uint64_t i = 0; i < h.n_tokens; ++i) {
      const uint32_t t = s.raw_token(i);
      REMOE_CHECK(t < h.vocab_size, "shard ", name, ": token ", i, " is ", t, ", outside [0, ", h.vocab_size, ")");
    }
  }
  return shard;
}

uint64_t Shard::n_tokens() const { return impl_->header.n_tokens; }
uint64_t Shard::n_docs() const { return impl_->header.n_docs; }
uint32_t Shard::vocab_size() const { return impl_->header.vocab_size; }
const std::filesystem::path& Shard::path() const { return impl_->path; }
uint32_t Shard::max_domain() const { return impl_->max_domain; }

void Shard::check_unchanged() const {
  impl_->check_stat();
  Header now{};
  REMOE_CHECK(::pread(impl_->fd, &now, sizeof now, 0) == static_cast<ssize_t>(sizeof now), "shard ",
              impl_->path.string(), ": cannot re-read the header: ", errno_text());
  REMOE_CHECK(std::memcmp(&now, &impl_->header, sizeof now) == 0, "shard ", impl_->path.string(),
              ": the header changed on disk since the file was opened; restart the job");
}

int32_t Shard::token(uint64_t i) const {
  impl_->check_stat();
  REMOE_CHECK(i < impl_->header.n_tokens, "shard ", impl_->path.string(), ": token index ", i, " out of range (",
              impl_->header.n_tokens, " tokens)");
  return static_cast<int32_t>(impl_->raw_token(i));
}

void Shard::read(uint64_t start, std::span<int64_t> out) const {
  const uint64_t n = impl_->header.n_tokens;
  REMOE_CHECK(start <= n && out.size() <= n - start, "shard ", impl_->path.string(), ": read of ", out.size(),
              " tokens at ", start, " runs past the end (", n, " tokens)");
  impl_->check_stat();
  if (impl_->header.token_bytes == 2) {
    const unsigned char* p = impl_->tokens + 2 * start;
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = v;
    }
  } else {
    const unsigned char* p = impl_->tokens + 4 * start;
    for (size_t i = 0; i < out.size(); ++i) {
      uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = v;
    }
  }
}

DocEntry Shard::doc(uint64_t i) const {
  REMOE_CHECK(i < impl_->header.n_docs, "shard ", impl_->path.string(), ": document index ", i,
              " out of range (", impl_->header.n_docs, " documents)");
  return impl_->entry(i);
}

}  // namespace remoe::data
