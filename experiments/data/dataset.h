// A built dataset directory (written by `remoe data`):
//   <data_dir>/dataset.json   manifest: tokenizer file, vocab size, domains, shards with token/doc
//                             counts and FNV-1a 64 file hashes, build options (preset, seed, holdout
//                             fraction, …) under "build"
//   <data_dir>/tokenizer.model (SentencePiece) or gpt2/ (encoder.json + vocab.bpe)
//   <data_dir>/train.bin, <data_dir>/valid.bin   token shards (shard.h)
//   <data_dir>/text/{train,valid}/<domain>.jsonl   the extracted documents {"domain","source","id","text"}
//
// dataset.json (version 1):
//   {"version": 1, "tokenizer": "tokenizer.model", "tokenizer_kind": "sentencepiece", "vocab_size": 16384,
//    "eod_id": 1, "domains": ["books", …],
//    "shards": {"train": {"file": "train.bin", "n_tokens": …, "n_docs": …, "fnv1a64": "<16 hex>",
//                         "bytes": …, "mtime_ns": …},
//               "valid": {…}},
//    (bytes and mtime_ns: the file's size and modification time when the manifest was written;
//    manifests from before they existed lack them)
//    "build": {…}}
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace remoe::data {

class Shard;

// What the manifest says about one shard file.
struct ShardRecord {
  std::optional<uint64_t> n_tokens, n_docs, bytes;
  std::optional<int64_t> mtime_ns;
  std::string fnv1a64;  // "" when absent
};

struct DatasetInfo {
  std::filesystem::path dir;
  std::string tokenizer;  // path relative to dir
  uint32_t vocab_size = 0;
  std::vector<std::string> domains;  // index = DocEntry::domain
  std::filesystem::path train_shard, valid_shard;  // absolute
  ShardRecord train_record, valid_record;
};

// Reads and checks dataset.json (throws remoe::Error naming the file and the missing key). Checks
// that the tokenizer and shard files exist; the shards themselves are validated by Shard::open.
DatasetInfo load_dataset(const std::filesystem::path& data_dir);

// Opens the dataset's "train" or "valid" shard and checks it against the manifest before any
// training or evaluation starts: its vocabulary is the dataset's, its domain ids name manifest
// domains, its token/document counts and size are the recorded ones, and when its mtime differs
// from the recorded one, its FNV-1a hash is the recorded one. Throws naming the file and the field.
Shard open_dataset_shard(const DatasetInfo& info, const std::string& split);

// Writes <info.dir>/dataset.json atomically (temp file + rename). The shard counts and hashes are
// taken from the shard files (opened and checksum-verified here), the tokenizer's kind and EOD id
// from the tokenizer file; the shards and the tokenizer must lie inside info.dir and agree with
// info.vocab_size. `build` (a JSON object, e.g. preset, seed, holdout fraction) is stored as is.
void write_dataset_manifest(const DatasetInfo& info, const nlohmann::json& build);

}  // namespace remoe::data
