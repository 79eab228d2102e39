// A built dataset directory (written by `remoe data`):
//   <data_dir>/dataset.json   manifest: tokenizer file, vocab size, domains, shards with token/doc
//                             counts and sha256, build options (preset, seed, holdout fraction)
//   <data_dir>/tokenizer.model (SentencePiece) or gpt2/ (encoder.json + vocab.bpe)
//   <data_dir>/train.bin, <data_dir>/valid.bin   token shards (shard.h)
//   <data_dir>/text/<domain>.jsonl   the extracted documents {"domain","source","text"}
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace remoe::data {

struct DatasetInfo {
  std::filesystem::path dir;
  std::string tokenizer;  // path relative to dir
  uint32_t vocab_size = 0;
  std::vector<std::string> domains;  // index = DocEntry::domain
  std::filesystem::path train_shard, valid_shard;  // absolute
};

// Reads and checks dataset.json (throws remoe::Error naming the file and the missing key).
DatasetInfo load_dataset(const std::filesystem::path& data_dir);

}  // namespace remoe::data
