// dataset.json: reading (with checks that name the file and the key) and writing (from the files
// it describes, so the manifest cannot disagree with them).
#include "experiments/data/dataset.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "experiments/data/hash.h"
#include "experiments/data/shard.h"
#include "experiments/data/tokenizer.h"

namespace remoe::data {

namespace {

constexpr int kManifestVersion = 1;

using nlohmann::json;

// The value at a '/'-separated key path (e.g. "shards/train/file"), which must exist.
const json& require(const json& root, const std::string& key, const std::string& file) {
  const json* node = &root;
  std::string::size_type begin = 0;
  while (true) {
    const auto end = key.find('/', begin);
    const std::string part = key.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    REMOE_CHECK(node->is_object() && node->contains(part), "dataset manifest ", file, ": missing key \"", key,
                "\"");
    node = &(*node)[part];
    if (end == std::string::npos) return *node;
    begin = end + 1;
  }
}

std::string require_string(const json& root, const std::string& key, const std::string& file) {
  const json& v = require(root, key, file);
  REMOE_CHECK(v.is_string() && !v.get<std::string>().empty(), "dataset manifest ", file, ": key \"", key,
              "\" must be a non-empty string, got ", v.dump());
  return v.get<std::string>();
}

// A path stored in the manifest: relative to the dataset directory, and staying inside it.
std::filesystem::path inside(const std::filesystem::path& dir, const std::string& relative, const std::string& key,
                             const std::string& file) {
  const std::filesystem::path rel(relative);
  REMOE_CHECK(rel.is_relative() && !rel.empty() && *rel.begin() != "..", "dataset manifest ", file, ": key \"",
              key, "\" must be a path inside the dataset directory, got \"", relative, "\"");
  const std::filesystem::path full = dir / rel;
  REMOE_CHECK(std::filesystem::exists(full), "dataset manifest ", file, ": key \"", key, "\" names ",
              full.string(), ", which does not exist");
  return full;
}

// `path` relative to `dir`, or an error if it lies outside.
std::string relative_inside(const std::filesystem::path& path, const std::filesystem::path& dir,
                            const std::string& what) {
  const auto rel = std::filesystem::weakly_canonical(path).lexically_relative(std::filesystem::weakly_canonical(dir));
  REMOE_CHECK(!rel.empty() && *rel.begin() != "..", "write_dataset_manifest: the ", what, " ", path.string(),
              " is not inside the dataset directory ", dir.string());
  return rel.generic_string();
}

// The file's modification time in nanoseconds since the epoch.
int64_t mtime_ns(const std::filesystem::path& path) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::filesystem::last_write_time(path).time_since_epoch())
      .count();
}

// The optional bookkeeping fields of a shard's manifest entry; present ones must be integers.
ShardRecord read_shard_record(const json& root, const std::string& split, const std::string& file) {
  const json& entry = require(root, "shards/" + split, file);
  ShardRecord r;
  auto count = [&](const char* key) -> std::optional<uint64_t> {
    if (!entry.contains(key)) return std::nullopt;
    REMOE_CHECK(entry[key].is_number_unsigned(), "dataset manifest ", file, ": key \"shards/", split, "/", key,
                "\" must be an integer >= 0, got ", entry[key].dump());
    return entry[key].get<uint64_t>();
  };
  r.n_tokens = count("n_tokens");
  r.n_docs = count("n_docs");
  r.bytes = count("bytes");
  if (entry.contains("mtime_ns")) {
    REMOE_CHECK(entry["mtime_ns"].is_number_integer(), "dataset manifest ", file, ": key \"shards/", split,
                "/mtime_ns\" must be an integer, got ", entry["mtime_ns"].dump());
    r.mtime_ns = entry["mtime_ns"].get<int64_t>();
  }
  if (entry.contains("fnv1a64") && entry["fnv1a64"].is_string()) r.fnv1a64 = entry["fnv1a64"].get<std::string>();
  return r;
}

}  // namespace

DatasetInfo load_dataset(const std::filesystem::path& data_dir) {
  const std::filesystem::path manifest = data_dir / "dataset.json";
  const std::string file = manifest.string();
  std::ifstream in(manifest);
  REMOE_CHECK(in, "load_dataset: cannot open ", file, " (build the dataset with `remoe data` first)");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    fail("dataset manifest ", file, ": not valid JSON: ", e.what());
  }
  REMOE_CHECK(root.is_object(), "dataset manifest ", file, ": expected a JSON object");
  const json& version = require(root, "version", file);
  REMOE_CHECK(version.is_number_integer() && version.get<int64_t>() == kManifestVersion, "dataset manifest ", file,
              ": unsupported version ", version.dump(), " (expected ", kManifestVersion, ")");

  DatasetInfo info;
  info.dir = std::filesystem::absolute(data_dir);
  info.tokenizer = require_string(root, "tokenizer", file);
  inside(info.dir, info.tokenizer, "tokenizer", file);

  const json& vocab = require(root, "vocab_size", file);
  REMOE_CHECK(vocab.is_number_unsigned() && vocab.get<uint64_t>() > 0 && vocab.get<uint64_t>() <= INT32_MAX,
              "dataset manifest ", file, ": key \"vocab_size\" must be a positive integer, got ", vocab.dump());
  info.vocab_size = vocab.get<uint32_t>();

  const json& domains = require(root, "domains", file);
  REMOE_CHECK(domains.is_array() && !domains.empty(), "dataset manifest ", file,
              ": key \"domains\" must be a non-empty array of names, got ", domains.dump());
  for (const json& d : domains) {
    REMOE_CHECK(d.is_string() && !d.get<std::string>().empty(), "dataset manifest ", file,
                ": key \"domains\" holds a non-name ", d.dump());
    info.domains.push_back(d.get<std::string>());
  }

  info.train_shard = inside(info.dir, require_string(root, "shards/train/file", file), "shards/train/file", file);
  info.valid_shard = inside(info.dir, require_string(root, "shards/valid/file", file), "shards/valid/file", file);
  info.train_record = read_shard_record(root, "train", file);
  info.valid_record = read_shard_record(root, "valid", file);
  return info;
}

Shard open_dataset_shard(const DatasetInfo& info, const std::string& split) {
  REMOE_CHECK(split == "train" || split == "valid", "open_dataset_shard: split must be train or valid, got ", split);
  const std::filesystem::path& path = split == "train" ? info.train_shard : info.valid_shard;
  const ShardRecord& record = split == "train" ? info.train_record : info.valid_record;
  const std::string manifest = (info.dir / "dataset.json").string(), name = path.string();
  Shard shard = Shard::open(path);
  REMOE_CHECK(shard.vocab_size() == info.vocab_size, "shard ", name, " has vocab_size ", shard.vocab_size(),
              " but ", manifest, " says vocab_size ", info.vocab_size, " (rebuild the dataset with `remoe data`)");
  REMOE_CHECK(shard.n_docs() == 0 || shard.max_domain() < info.domains.size(), "shard ", name,
              " has documents of domain id ", shard.max_domain(), " but ", manifest, " names only ",
              info.domains.size(), " domains");
  auto same = [&](const char* key, const std::optional<uint64_t>& recorded, uint64_t actual) {
    REMOE_CHECK(!recorded || *recorded == actual, "shard ", name, " has ", key, " = ", actual, " but ", manifest,
                " records shards/", split, "/", key, " = ", *recorded,
                " (the file was replaced after the manifest was written; rebuild with `remoe data`)");
  };
  same("n_tokens", record.n_tokens, shard.n_tokens());
  same("n_docs", record.n_docs, shard.n_docs());
  same("bytes", record.bytes, std::filesystem::file_size(path));
  // A changed mtime alone is harmless (a copy); then the content must still be the recorded one.
  if (record.mtime_ns && *record.mtime_ns != mtime_ns(path) && !record.fnv1a64.empty())
    REMOE_CHECK(hex64(fnv1a64_file(path)) == record.fnv1a64, "shard ", name, " was modified after ", manifest,
                " was written (its mtime and its hash differ from shards/", split,
                "/fnv1a64); rebuild with `remoe data`");
  return shard;
}

void write_dataset_manifest(const DatasetInfo& info, const nlohmann::json& build) {
  REMOE_CHECK(build.is_object() || build.is_null(), "write_dataset_manifest: build options must be a JSON object");
  REMOE_CHECK(!info.domains.empty(), "write_dataset_manifest: no domains for ", info.dir.string());
  const std::filesystem::path tokenizer_path = info.dir / info.tokenizer;
  const auto tokenizer = load_tokenizer(tokenizer_path);
  REMOE_CHECK(tokenizer->vocab_size() <= static_cast<int32_t>(info.vocab_size), "write_dataset_manifest: tokenizer ",
              tokenizer_path.string(), " has ", tokenizer->vocab_size(), " ids, more than vocab_size ",
              info.vocab_size);

  nlohmann::ordered_json root;
  root["version"] = kManifestVersion;
  root["tokenizer"] = relative_inside(tokenizer_path, info.dir, "tokenizer");
  root["tokenizer_kind"] = tokenizer->kind();
  root["vocab_size"] = info.vocab_size;
  root["eod_id"] = tokenizer->eod_id();
  root["domains"] = info.domains;
  for (const auto& [split, path] : {std::pair{"train", info.train_shard}, std::pair{"valid", info.valid_shard}}) {
    const Shard shard = Shard::open(path);
    REMOE_CHECK(shard.vocab_size() == info.vocab_size, "write_dataset_manifest: shard ", path.string(),
                " has vocab_size ", shard.vocab_size(), ", the dataset ", info.vocab_size);
    for (uint64_t i = 0; i < shard.n_docs(); ++i)
      REMOE_CHECK(shard.doc(i).domain < info.domains.size(), "write_dataset_manifest: shard ", path.string(),
                  " document ", i, " has domain ", shard.doc(i).domain, " but there are ", info.domains.size(),
                  " domains");
    root["shards"][split] = {{"file", relative_inside(path, info.dir, std::string(split) + " shard")},
                             {"n_tokens", shard.n_tokens()},
                             {"n_docs", shard.n_docs()},
                             {"fnv1a64", hex64(fnv1a64_file(path))},
                             {"bytes", std::filesystem::file_size(path)},
                             {"mtime_ns", mtime_ns(path)}};
  }
  root["build"] = build.is_null() ? nlohmann::ordered_json::object() : nlohmann::ordered_json::parse(build.dump());

  const std::filesystem::path target = info.dir / "dataset.json";
  std::filesystem::path temp = target;
  temp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp);
    REMOE_CHECK(out, "write_dataset_manifest: cannot create ", temp.string());
    out << root.dump(2) << "\n";
    out.close();
    REMOE_CHECK(out, "write_dataset_manifest: cannot write ", temp.string());
  }
  std::error_code error;
  std::filesystem::rename(temp, target, error);
  if (error) {
    const std::string why = error.message();
    std::filesystem::remove(temp, error);
    fail("write_dataset_manifest: cannot rename ", temp.string(), " to ", target.string(), ": ", why);
  }
}

}  // namespace remoe::data
