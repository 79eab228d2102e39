// Our own tokenizer: a SentencePiece BPE (Debian's libsentencepiece 0.1.97) trained on the corpus,
// set up so that decode(encode(text)) == text byte for byte:
//   - normalization "identity", no dummy prefix, no removal of extra whitespace: the text the
//     model sees is the input with ' ' escaped as U+2581 '▁', nothing else changed;
//   - byte fallback: characters outside the vocabulary become <0xNN> byte pieces;
//   - the two things SentencePiece itself cannot round-trip are routed around it: a literal '▁' in
//     the input (SentencePiece would decode it as a space) and bytes that are not valid UTF-8
//     (it would replace them with U+FFFD) are emitted directly as byte pieces;
//   - decoding is ours (a table id → bytes), not SentencePiece's Decode, so byte pieces are never
//     re-interpreted and '▁' inside a piece always means ' '.
// Ids: 0 = <unk> (unused with byte fallback), 1 = <eod> (SentencePiece's eos, a control piece that
// no text can produce; decodes to ""), then the 256 byte pieces, then the learned pieces (merges,
// then single characters). No bos/pad.
//
// Determinism: SentencePiece 0.1.97 samples input_sentence_size lines with a fixed internal seed
// (12345678; SetRandomGeneratorSeed does not reach that sampler), so we sample ourselves: when the
// file has more than max_sentences lines, a seeded selection sampling (Knuth's algorithm S, our own
// portable arithmetic on std::mt19937_64) picks exactly max_sentences of them, in file order, and
// SentencePiece gets all of those (input_sentence_size = 0). For anything else in the library that
// draws from its generator, SetRandomGeneratorSeed is called too; that generator is a thread_local
// seeded on first use in a thread, so each training runs on a fresh thread. The model is produced
// in memory (serialized proto) from our line iterator, so it records no file paths and is
// byte-identical for identical input, options and seed.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "experiments/data/tokenizer.h"

namespace remoe::data {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped ' '
constexpr size_t kCacheLimit = 1 << 18;                      // words remembered before the cache is cleared

size_t count_lines(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  REMOE_CHECK(in, "train_sentencepiece: cannot open ", file.string());
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  REMOE_CHECK(in.eof(), "train_sentencepiece: read error in ", file.string());
  return lines;
}

// Feeds SentencePiece `wanted` of the file's `total` lines (all of them if wanted ≥ total), each
// without its newline, chosen uniformly by a seeded selection sampling, in file order.
class SampledLines : public sentencepiece::SentenceIterator {
 public:
  SampledLines(const std::filesystem::path& file, size_t total, size_t wanted, uint64_t seed)
      : in_(file, std::ios::binary), file_(file), total_(total), wanted_(std::min(wanted, total)), rng_(seed) {
    Next();
  }
  bool done() const override { return done_; }
  void Next() override {
    while (taken_ < wanted_ && std::getline(in_, line_)) {
      // Algorithm S: keep line number seen_ with probability (wanted − taken) / (total − seen).
      const double u = static_cast<double>(rng_() >> 11) * 0x1p-53;
      const bool keep = static_cast<double>(total_ - seen_) * u < static_cast<double>(wanted_ - taken_);
      ++seen_;
      if (keep) {
        ++taken_;
        return;
      }
    }
    done_ = true;
    if (taken_ < wanted_)
      status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kDataLoss,
                                            "read error in " + file_.string() + " (did it change during training?)");
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }

 private:
  std::ifstream in_;
  std::filesystem::path file_;
  size_t total_, wanted_, seen_ = 0, taken_ = 0;
  std::mt19937_64 rng_;
  std::string line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

void write_file_atomically(const std::filesystem::path& target, const std::string& bytes) {
  std::filesystem::path temp = target;
  temp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary);
    REMOE_CHECK(out, "train_sentencepiece: cannot create ", temp.string());
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      fail("train_sentencepiece: cannot write ", temp.string());
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, target, error);
  REMOE_CHECK(!error, "train_sentencepiece: cannot rename ", temp.string(), " to ", target.string(), ": ",
              error.message());
}

// Length of the valid UTF-8 sequence at s[i] (1–4), or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t utf8_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) n = 2, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 4, min = 0x10000;
  else return 0;
  if (i + n > s.size()) return 0;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& model_file) {
    const auto status = processor_.Load(model_file.string());
    REMOE_CHECK(status.ok(), "load_sentencepiece: cannot load ", model_file.string(), ": ", status.ToString());
    const int n = processor_.GetPieceSize();
    surface_.resize(static_cast<size_t>(n));
    byte_id_.fill(-1);
    for (int id = 0; id < n; ++id) {
      const std::string& piece = processor_.IdToPiece(id);
      if (processor_.IsByte(id)) {
        // Byte pieces are spelled <0xNN>.
        unsigned value = 0;
        REMOE_CHECK(piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%2X>", &value) == 1,
                    "load_sentencepiece: ", model_file.string(), ": odd byte piece \"", piece, "\"");
        surface_[id] = std::string(1, static_cast<char>(value));
        byte_id_[value] = id;
      } else if (processor_.IsControl(id) || processor_.IsUnknown(id) || processor_.IsUnused(id)) {
        surface_[id] = "";
      } else {
        std::string text;
        for (size_t at = 0; at < piece.size();) {
          if (piece.compare(at, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
            text += ' ';
            at += kSpaceSymbol.size();
          } else {
            text += piece[at++];
          }
        }
        surface_[id] = std::move(text);
      }
    }
    has_bytes_ = true;
    for (int id : byte_id_) has_bytes_ = has_bytes_ && id >= 0;
    // Speed: BPE merges happen inside pieces, so if no piece has a space after a non-space (true
    // for models trained with split_by_whitespace, as ours are) no merge crosses the boundary
    // before a run of spaces that follows a non-space. Text then splits there into words " *[^ ]*"
    // whose encodings concatenate to the encoding of the whole, and are cached, as in GPT-2's
    // encoder. (SentencePiece alone runs at ~1.5 MB/s and slows down on long inputs.)
    words_split_ = true;
    for (int id = 0; id < n; ++id) {
      const std::string& piece = surface_[id];
      const auto first_other = piece.find_first_not_of(' ');
      const bool space_after_other =
          first_other != std::string::npos && piece.find(' ', first_other) != std::string::npos;
      if (!processor_.IsByte(id) && space_after_other) words_split_ = false;
    }
    eod_ = processor_.eos_id();
    REMOE_CHECK(eod_ >= 0, "load_sentencepiece: ", model_file.string(), " has no eos piece to use as EOD");
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    if (!has_bytes_) {  // a model without byte fallback: SentencePiece alone (may lose text as <unk>)
      append(text, ids);
      return ids;
    }
    // Spans of valid UTF-8 without '▁' go to SentencePiece; anything else becomes byte pieces.
    size_t start = 0, i = 0;
    while (i < text.size()) {
      const size_t n = utf8_length(text, i);
      if (n != 0 && text.compare(i, n, kSpaceSymbol) != 0) {
        i += n;
        continue;
      }
      append(text.substr(start, i - start), ids);
      const size_t raw = n == 0 ? 1 : n;
      for (size_t k = 0; k < raw; ++k) ids.push_back(byte_id_[static_cast<unsigned char>(text[i + k])]);
      i += raw;
      start = i;
    }
    append(text.substr(start), ids);
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (const int32_t id : ids) {
      REMOE_CHECK(id >= 0 && static_cast<size_t>(id) < surface_.size(), "sentencepiece decode: id ", id,
                  " is outside [0, ", surface_.size(), ")");
      text += surface_[static_cast<size_t>(id)];
    }
    return text;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(surface_.size()); }
  int32_t eod_id() const override { return eod_; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  // Encodes text (valid UTF-8 without '▁') by SentencePiece, word by word through the cache when
  // the model allows it.
  void append(std::string_view text, std::vector<int32_t>& ids) const {
    if (!words_split_) return append_encoded(text, ids);
    for (size_t i = 0; i < text.size();) {
      size_t end = i;
      while (end < text.size() && text[end] == ' ') ++end;
      while (end < text.size() && text[end] != ' ') ++end;
      const std::string_view word = text.substr(i, end - i);
      i = end;
      {
        std::lock_guard lock(cache_mutex_);
        const auto it = cache_.find(std::string(word));
        if (it != cache_.end()) {
          ids.insert(ids.end(), it->second.begin(), it->second.end());
          continue;
        }
      }
      std::vector<int32_t> word_ids;
      append_encoded(word, word_ids);
      ids.insert(ids.end(), word_ids.begin(), word_ids.end());
      std::lock_guard lock(cache_mutex_);
      if (cache_.size() >= kCacheLimit) cache_.clear();
      cache_.emplace(std::string(word), std::move(word_ids));
    }
  }

  void append_encoded(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<int> piece_ids;
    const auto status = processor_.Encode(text, &piece_ids);
    REMOE_CHECK(status.ok(), "sentencepiece encode failed: ", status.ToString());
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }

  sentencepiece::SentencePieceProcessor processor_;
  std::vector<std::string> surface_;  // id → the bytes it decodes to
  std::array<int32_t, 256> byte_id_{};
  bool has_bytes_ = false;
  bool words_split_ = false;  // see the constructor
  int32_t eod_ = -1;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // word → ids
};

}  // namespace

void train_sentencepiece(const std::filesystem::path& text_file, const std::filesystem::path& model_prefix,
                         const BpeTrainOptions& options) {
  REMOE_CHECK(std::filesystem::is_regular_file(text_file), "train_sentencepiece: no such file ", text_file.string());
  REMOE_CHECK(options.vocab_size >= 260, "train_sentencepiece: vocab_size ", options.vocab_size,
              " is too small (the 256 byte pieces, <unk>, <eod> and the characters need room)");
  REMOE_CHECK(options.max_sentences > 0, "train_sentencepiece: max_sentences must be positive");
  REMOE_CHECK(options.threads > 0, "train_sentencepiece: threads must be positive");
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", options.byte_fallback ? "true" : "false"},
      {"split_digits", options.split_digits ? "true" : "false"},
      {"character_coverage", "0.9995"},
      {"input_sentence_size", "0"},  // SampledLines has sampled already
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", "16384"},  // bytes; longer lines are skipped by the trainer
      {"num_threads", std::to_string(options.threads)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"allow_whitespace_only_pieces", "true"},  // runs of spaces (code indentation) become pieces
      {"unk_id", "0"},
      {"eos_id", "1"},
      {"eos_piece", "<eod>"},
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      {"minloglevel", "1"},  // warnings and errors only
  };
  // SentencePiece reserves seed 0xFFFFFFFF ("use std::random_device"); fold 64 → 32 bits and avoid it.
  auto seed = static_cast<unsigned>(options.seed ^ (options.seed >> 32));
  if (seed == ~0u) seed = ~0u - 1;

  const size_t total_lines = count_lines(text_file);
  std::string model;
  std::string error;
  std::thread worker([&] {  // fresh thread: fresh thread_local generator, seeded below
    try {
      sentencepiece::SetRandomGeneratorSeed(seed);
      SampledLines lines(text_file, total_lines, static_cast<size_t>(options.max_sentences), options.seed);
      const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
      if (!status.ok()) error = status.ToString();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  worker.join();
  REMOE_CHECK(error.empty(), "train_sentencepiece on ", text_file.string(), ": ", error);
  REMOE_CHECK(!model.empty(), "train_sentencepiece on ", text_file.string(), ": the trainer returned no model");

  std::filesystem::path model_file = model_prefix, vocab_file = model_prefix;
  model_file += ".model";
  vocab_file += ".vocab";
  write_file_atomically(model_file, model);
  // The .vocab listing (piece, tab, score per line) is for people; the model file is what is loaded.
  sentencepiece::SentencePieceProcessor processor;
  const auto status = processor.LoadFromSerializedProto(model);
  REMOE_CHECK(status.ok(), "train_sentencepiece: cannot load the trained model: ", status.ToString());
  std::string vocab;
  for (int id = 0; id < processor.GetPieceSize(); ++id)
    vocab += processor.IdToPiece(id) + "\t" + std::to_string(processor.GetScore(id)) + "\n";
  write_file_atomically(vocab_file, vocab);
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file) {
  REMOE_CHECK(std::filesystem::is_regular_file(model_file), "load_sentencepiece: no such file ",
              model_file.string());
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

// The one place that knows both tokenizer kinds by their files.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) {
    const auto encoder = path / "encoder.json", merges = path / "vocab.bpe";
    REMOE_CHECK(std::filesystem::exists(encoder) && std::filesystem::exists(merges), "load_tokenizer: directory ",
                path.string(), " should hold the GPT-2 files encoder.json and vocab.bpe");
    return load_gpt2(encoder, merges);
  }
  REMOE_CHECK(path.extension() == ".model", "load_tokenizer: ", path.string(),
              " is neither a SentencePiece .model file nor a directory with encoder.json + vocab.bpe");
  return load_sentencepiece(path);
}

}  // namespace remoe::data
