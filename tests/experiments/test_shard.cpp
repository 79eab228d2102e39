// Token shards: round trips (u16 and u32 tokens, empty shards), atomic writes, and every kind of
// damage open() must name: truncation, bad magic, bad checksum, inconsistent doc index.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "experiments/data/dataset.h"
#include "experiments/data/hash.h"
#include "experiments/data/shard.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace remoe::data;
using remoe::test::read_file_bytes;
using remoe::test::TempDir;

namespace {


void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class T>
void poke(std::string& bytes, size_t at, T value) {
  std::memcpy(&bytes[at], &value, sizeof value);
}

// Three documents of a vocabulary of `vocab` ids (EOD = vocab − 1), using ids up to vocab − 1.
std::vector<std::vector<int32_t>> sample_docs(int32_t vocab) {
  const int32_t eod = vocab - 1;
  return {{0, 5, vocab - 2, eod}, {eod}, {7, 7, 3, 1, 2, vocab / 2, eod}};
}

fs::path write_sample(const fs::path& path, uint32_t vocab) {
  ShardWriter writer(path, vocab);
  uint32_t domain = 0;
  for (const auto& doc : sample_docs(static_cast<int32_t>(vocab))) writer.add_document(doc, domain++, 10 * doc.size());
  writer.finish();
  return path;
}

void check_sample(const Shard& shard, uint32_t vocab) {
  const auto docs = sample_docs(static_cast<int32_t>(vocab));
  std::vector<int32_t> all;
  for (const auto& d : docs) all.insert(all.end(), d.begin(), d.end());
  CHECK(shard.vocab_size() == vocab);
  REQUIRE(shard.n_tokens() == all.size());
  REQUIRE(shard.n_docs() == docs.size());
  for (size_t i = 0; i < all.size(); ++i) CHECK(shard.token(i) == all[i]);
  std::vector<int64_t> window(5);
  shard.read(2, window);
  for (size_t i = 0; i < window.size(); ++i) CHECK(window[i] == all[2 + i]);
  uint64_t start = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    const DocEntry e = shard.doc(d);
    CHECK(e.start == start);
    CHECK(e.n_tokens == docs[d].size());
    CHECK(e.domain == d);
    CHECK(e.n_bytes == 10 * docs[d].size());
    start += e.n_tokens;
  }
}

}  // namespace

TEST_CASE("shard: u16 round trip (vocab ≤ 65536) and file layout") {
  TempDir dir("shard_u16");
  const fs::path path = write_sample(dir.path / "a.bin", 65536);
  check_sample(Shard::open(path), 65536);
  // 64-byte header + 12 tokens × 2 bytes + 3 docs × 24 bytes.
  const std::string bytes = read_file_bytes(path);
  CHECK(bytes.size() == 64 + 12 * 2 + 3 * 24);
  CHECK(bytes.substr(0, 8) == "REMOESHD");
  uint32_t token_bytes = 0;
  std::memcpy(&token_bytes, &bytes[16], 4);
  CHECK(token_bytes == 2);
  // The checksum is FNV-1a 64 over the token bytes then the index bytes.
  uint64_t stored = 0;
  std::memcpy(&stored, &bytes[40], 8);
  CHECK(stored == fnv1a64(bytes.data() + 64, bytes.size() - 64));
}

TEST_CASE("shard: u32 round trip (vocab > 65536)") {
  TempDir dir("shard_u32");
  const fs::path path = write_sample(dir.path / "a.bin", 100000);
  check_sample(Shard::open(path), 100000);
  CHECK(fs::file_size(path) == 64 + 12 * 4 + 3 * 24);
}

TEST_CASE("shard: empty shard") {
  TempDir dir("shard_empty");
  const fs::path path = dir.path / "empty.bin";
  ShardWriter writer(path, 1000);
  writer.finish();
  CHECK(writer.tokens_written() == 0);
  const Shard shard = Shard::open(path);
  CHECK(shard.n_tokens() == 0);
  CHECK(shard.n_docs() == 0);
  std::vector<int64_t> none;
  shard.read(0, none);
  CHECK_THROWS_WITH_ALL(shard.token(0), "empty.bin", "out of range");
  CHECK_THROWS_WITH_ALL(shard.doc(0), "empty.bin", "out of range");
}

TEST_CASE("shard: out-of-range reads are errors") {
  TempDir dir("shard_range");
  const Shard shard = Shard::open(write_sample(dir.path / "a.bin", 500));
  std::vector<int64_t> window(4);
  CHECK_THROWS_WITH_ALL(shard.read(9, window), "a.bin", "past the end");
  CHECK_THROWS_WITH_ALL(shard.token(12), "out of range");
  CHECK_THROWS_WITH_ALL(shard.doc(3), "out of range");
}

TEST_CASE("shard: writer rejects bad tokens and empty documents, naming them") {
  TempDir dir("shard_bad_token");
  ShardWriter writer(dir.path / "a.bin", 300);
  const std::vector<int32_t> too_big = {1, 2, 300};
  CHECK_THROWS_WITH_ALL(writer.add_document(too_big, 0, 3), "token id 300", "position 2", "[0, 300)", "a.bin");
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_WITH_ALL(writer.add_document(negative, 0, 1), "token id -1");
  CHECK_THROWS_WITH_ALL(writer.add_document(std::span<const int32_t>(), 0, 0), "empty");
  CHECK(writer.tokens_written() == 0);
  CHECK_THROWS_WITH_ALL(ShardWriter(dir.path / "b.bin", 0), "vocab_size");
}

TEST_CASE("shard: atomic write; abandoned writers leave no temp file") {
  TempDir dir("shard_atomic");
  const fs::path path = dir.path / "a.bin";
  const fs::path temp = fs::path(path.string() + ".tmp." + std::to_string(::getpid()));
  {
    ShardWriter writer(path, 1000);
    const std::vector<int32_t> doc = {1, 2, 999};
    writer.add_document(doc, 0, 3);
    CHECK(fs::exists(temp));
    CHECK_FALSE(fs::exists(path));  // nothing under the final name before finish()
  }
  CHECK_FALSE(fs::exists(temp));
  CHECK_FALSE(fs::exists(path));

  // finish() replaces an existing shard in one step and leaves no temp file.
  write_sample(path, 1000);
  const std::vector<int32_t> doc = {4, 999};
  {
    ShardWriter writer(path, 1000);
    writer.add_document(doc, 1, 2);
    CHECK(Shard::open(path).n_tokens() == 12);  // the old shard is intact while the new one is written
    writer.finish();
    CHECK_THROWS_WITH_ALL(writer.finish(), "twice");
    CHECK_THROWS_WITH_ALL(writer.add_document(doc, 0, 2), "after finish");
  }
  CHECK_FALSE(fs::exists(temp));
  CHECK(Shard::open(path).n_tokens() == 2);
  CHECK(fs::directory_iterator(dir.path) != fs::directory_iterator());
  int files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path)) ++files;
  CHECK(files == 1);
}

TEST_CASE("shard: damaged files are rejected with the file and the problem named") {
  TempDir dir("shard_damage");
  const fs::path good = write_sample(dir.path / "good.bin", 1000);
  const std::string bytes = read_file_bytes(good);
  const fs::path bad = dir.path / "bad.bin";

  SUBCASE("missing") { CHECK_THROWS_WITH_ALL(Shard::open(dir.path / "none.bin"), "none.bin", "cannot open"); }
  SUBCASE("shorter than the header") {
    write_bytes(bad, bytes.substr(0, 40));
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "truncated");
  }
  SUBCASE("truncated body") {
    write_bytes(bad, bytes.substr(0, bytes.size() - 1));
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "size mismatch");
  }
  SUBCASE("trailing garbage") {
    write_bytes(bad, bytes + "x");
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "size mismatch");
  }
  SUBCASE("wrong magic") {
    std::string b = bytes;
    b[0] = 'X';
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "magic");
  }
  SUBCASE("unknown version") {
    std::string b = bytes;
    poke<uint32_t>(b, 8, 2);
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "version 2");
  }
  SUBCASE("token width that does not match the vocabulary") {
    std::string b = bytes;
    poke<uint32_t>(b, 16, 4);
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "token_bytes 4");
  }
  SUBCASE("absurd counts do not overflow the size check") {
    std::string b = bytes;
    poke<uint64_t>(b, 24, ~0ULL / 2);
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "size mismatch");
  }
  SUBCASE("flipped token byte: checksum") {
    std::string b = bytes;
    b[64 + 3] ^= 0x01;
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "checksum");
    CHECK(Shard::open(bad, /*verify_checksum=*/false).n_tokens() == 12);  // structure is still fine
  }
  SUBCASE("doc index that does not tile the tokens") {
    std::string b = bytes;
    const size_t index = 64 + 12 * 2;
    poke<uint64_t>(b, index + 24, 3);  // second document claims to start at token 3 instead of 4
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad, false), "bad.bin", "document 1");
  }
  SUBCASE("token outside the vocabulary with a matching checksum") {
    std::string b = bytes;
    poke<uint16_t>(b, 64, 1000);
    poke<uint64_t>(b, 40, fnv1a64(b.data() + 64, b.size() - 64));
    write_bytes(bad, b);
    CHECK_THROWS_WITH_ALL(Shard::open(bad), "bad.bin", "token 0 is 1000");
  }
}

TEST_CASE("shard: a moved shard keeps its mapping") {
  TempDir dir("shard_move");
  Shard a = Shard::open(write_sample(dir.path / "a.bin", 1000));
  Shard b = std::move(a);
  check_sample(b, 1000);
}

TEST_CASE("dataset: manifest written from the files and read back; bad manifests are named errors") {
  TempDir dir("dataset");
  // The tokenizer is the GPT-2 one (no training needed); the shards are the samples above.
  const fs::path gpt2 = REMOE_SOURCE_DIR "/.cache/gpt2";
  write_sample(dir.path / "train.bin", 50304);
  write_sample(dir.path / "valid.bin", 50304);
  DatasetInfo info;
  info.dir = dir.path;
  info.tokenizer = "gpt2";
  info.vocab_size = 50304;
  info.domains = {"books", "code", "legal"};
  info.train_shard = dir.path / "train.bin";
  info.valid_shard = dir.path / "valid.bin";
  REQUIRE_MESSAGE(fs::exists(gpt2 / "encoder.json"), "GPT-2 files missing in ", gpt2.string(),
                  ": run `make deps` (experiments/data/fetch_gpt2.sh)");
  fs::create_directories(dir.path / "gpt2");
  fs::copy_file(gpt2 / "encoder.json", dir.path / "gpt2" / "encoder.json");
  fs::copy_file(gpt2 / "vocab.bpe", dir.path / "gpt2" / "vocab.bpe");
  write_dataset_manifest(info, nlohmann::json{{"preset", "demo"}, {"seed", 7}});

  const nlohmann::json manifest = nlohmann::json::parse(read_file_bytes(dir.path / "dataset.json"));
  CHECK(manifest["tokenizer_kind"] == "gpt2");
  CHECK(manifest["eod_id"] == 50256);
  CHECK(manifest["shards"]["train"]["n_tokens"] == 12);
  CHECK(manifest["shards"]["valid"]["n_docs"] == 3);
  CHECK(manifest["shards"]["train"]["fnv1a64"] == hex64(fnv1a64_file(dir.path / "train.bin")));
  CHECK(manifest["build"]["preset"] == "demo");

  const DatasetInfo back = load_dataset(dir.path);
  CHECK(back.tokenizer == "gpt2");
  CHECK(back.vocab_size == 50304);
  CHECK(back.domains == info.domains);
  CHECK(fs::equivalent(back.train_shard, info.train_shard));
  CHECK(fs::equivalent(back.valid_shard, info.valid_shard));

  // Too few domains for the documents' domain ids.
  info.domains = {"books"};
  CHECK_THROWS_WITH_ALL(write_dataset_manifest(info, nlohmann::json::object()), "domain 1");

  SUBCASE("missing key") {
    nlohmann::json m = manifest;
    m["shards"]["valid"].erase("file");
    write_bytes(dir.path / "dataset.json", m.dump());
    CHECK_THROWS_WITH_ALL(load_dataset(dir.path), "dataset.json", "shards/valid/file");
  }
  SUBCASE("missing shard file") {
    fs::remove(dir.path / "train.bin");
    CHECK_THROWS_WITH_ALL(load_dataset(dir.path), "train.bin", "does not exist");
  }
  SUBCASE("path escaping the directory") {
    nlohmann::json m = manifest;
    m["tokenizer"] = "../elsewhere.model";
    write_bytes(dir.path / "dataset.json", m.dump());
    CHECK_THROWS_WITH_ALL(load_dataset(dir.path), "tokenizer", "inside the dataset directory");
  }
  SUBCASE("wrong version") {
    nlohmann::json m = manifest;
    m["version"] = 9;
    write_bytes(dir.path / "dataset.json", m.dump());
    CHECK_THROWS_WITH_ALL(load_dataset(dir.path), "dataset.json", "version 9");
  }
  SUBCASE("not JSON") {
    write_bytes(dir.path / "dataset.json", "{oops");
    CHECK_THROWS_WITH_ALL(load_dataset(dir.path), "dataset.json", "not valid JSON");
  }
  SUBCASE("no manifest") {
    fs::remove(dir.path / "dataset.json");
    CHECK_THROWS_WITH_ALL(load_dataset(dir.path), "dataset.json", "remoe data");
  }
}

TEST_CASE("shard: a file truncated or rewritten under an open shard is an error, not SIGBUS") {
  TempDir dir("shard_changed");
  const fs::path path = write_sample(dir.path / "s.bin", 1000);
  {
    Shard shard = Shard::open(path);
    std::vector<int64_t> window(3);
    shard.read(0, window);
    shard.check_unchanged();
    fs::resize_file(path, 64);  // truncated in place: the mapping's pages past 64 bytes are gone
    CHECK_THROWS_WITH_ALL(shard.read(0, window), "s.bin", "changed on disk");
    CHECK_THROWS_WITH_ALL(shard.token(1), "s.bin", "changed on disk");
    CHECK_THROWS_WITH_ALL(shard.check_unchanged(), "s.bin");
  }
  {
    write_sample(path, 1000);  // a new file under the same name: a new inode, the old mapping stays valid
    Shard shard = Shard::open(path);
    const std::string bytes = read_file_bytes(path);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);  // same size, rewritten in place
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    fs::last_write_time(path, fs::last_write_time(path) + std::chrono::seconds(5));
    std::vector<int64_t> window(3);
    CHECK_THROWS_WITH_ALL(shard.read(0, window), "s.bin", "modified");
  }
}
