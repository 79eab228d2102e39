#include "experiments/data/build_dataset.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "experiments/data/dataset.h"
#include "experiments/data/hash.h"
#include "experiments/data/shard.h"
#include "experiments/data/tokenizer.h"

namespace remoe::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The Python that runs the extractor: Debian's when present (the pyenv one on PATH also works,
// the extractor uses the standard library only).
std::string python() { return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

struct Document {
  std::string text;
  uint32_t domain;
};

// Domain names = the JSONL file names under text/train, sorted (the index a shard's DocEntry holds).
std::vector<std::string> list_domains(const fs::path& text_dir) {
  std::vector<std::string> domains;
  REMOE_CHECK(fs::is_directory(text_dir / "train"), "remoe data: ", (text_dir / "train").string(),
              " does not exist (the corpus step did not run or failed)");
  for (const auto& e : fs::directory_iterator(text_dir / "train"))
    if (e.path().extension() == ".jsonl") domains.push_back(e.path().stem().string());
  std::sort(domains.begin(), domains.end());
  REMOE_CHECK(!domains.empty(), "remoe data: no <domain>.jsonl files under ", (text_dir / "train").string());
  return domains;
}

template <class F>
void for_each_document(const fs::path& file, F&& f) {
  std::ifstream in(file);
  REMOE_CHECK(in, "remoe data: cannot open ", file.string());
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    json doc;
    try {
      doc = json::parse(line);
    } catch (const json::exception& e) {
      fail("remoe data: ", file.string(), ":", line_no, " is not valid JSON: ", e.what());
    }
    REMOE_CHECK(doc.contains("text") && doc["text"].is_string(), "remoe data: ", file.string(), ":", line_no,
                " has no \"text\" string");
    f(doc["text"].get_ref<const std::string&>());
  }
}

// A sample of the train text for the BPE trainer: whole lines, taken evenly from every domain up
// to the byte budget (the small domains entirely).
void write_tokenizer_sample(const fs::path& text_dir, const std::vector<std::string>& domains, int64_t budget_bytes,
                            const fs::path& out_file) {
  const int64_t per_domain = budget_bytes / static_cast<int64_t>(domains.size());
  std::ofstream out(out_file, std::ios::binary);
  for (const std::string& d : domains) {
    int64_t written = 0;
    for_each_document(text_dir / "train" / (d + ".jsonl"), [&](const std::string& text) {
      if (written >= per_domain) return;
      std::istringstream lines(text);
      std::string line;
      while (std::getline(lines, line) && written < per_domain) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        out << line << "\n";
        written += static_cast<int64_t>(line.size()) + 1;
      }
    });
  }
  REMOE_CHECK(out, "remoe data: cannot write ", out_file.string());
}

// Encodes every document of one split into a shard; returns {documents, tokens}.
std::pair<int64_t, int64_t> write_split(const Tokenizer& tok, const fs::path& text_dir, const std::string& split,
                                        const std::vector<std::string>& domains, const fs::path& shard_path) {
  ShardWriter writer(shard_path, static_cast<uint32_t>(tok.vocab_size()));
  int64_t docs = 0;
  for (uint32_t d = 0; d < domains.size(); ++d) {
    const fs::path file = text_dir / split / (domains[d] + ".jsonl");
    if (!fs::exists(file)) continue;
    // Encode in parallel blocks of documents, write in order (the shard is deterministic).
    std::vector<std::string> block;
    auto flush = [&]() {
      std::vector<std::vector<int32_t>> encoded(block.size());
#pragma omp parallel for schedule(dynamic, 4)
      for (size_t i = 0; i < block.size(); ++i) {
        encoded[i] = tok.encode(block[i]);
        encoded[i].push_back(tok.eod_id());
      }
      for (size_t i = 0; i < block.size(); ++i) writer.add_document(encoded[i], d, block[i].size());
      docs += static_cast<int64_t>(block.size());
      block.clear();
    };
    for_each_document(file, [&](const std::string& text) {
      block.push_back(text);
      if (block.size() == 256) flush();
    });
    flush();
  }
  const int64_t tokens = static_cast<int64_t>(writer.tokens_written());
  writer.finish();
  return {docs, tokens};
}

}  // namespace

fs::path build_dataset(const BuildOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  REMOE_CHECK(o.tokenizer == "sentencepiece" || o.tokenizer == "gpt2", "remoe data: --tokenizer = '", o.tokenizer,
              "' is not one of: sentencepiece, gpt2");
  fs::create_directories(o.out);
  const fs::path text_dir = o.out / "text";

  // 1. the corpus (the extractor is idempotent itself and says when it skips).
  if (!o.skip_corpus) {
    const fs::path script = fs::path(REMOE_SOURCE_DIR) / "experiments/corpus/build_corpus.py";
    const fs::path cache = o.cache.empty() ? o.out.parent_path() / "cache" : o.cache;
    const std::string cmd = fmt::format("{} {} --preset {} --out {} --cache {} --seed {} --holdout {}", python(),
                                        shell_quote(script.string()), o.preset, shell_quote(o.out.string()),
                                        shell_quote(cache.string()), o.seed, o.holdout);
    std::cout << "remoe data: corpus: " << cmd << std::endl;
    REMOE_CHECK(std::system(cmd.c_str()) == 0, "remoe data: the corpus step failed (see its messages above)");
  }
  const std::vector<std::string> domains = list_domains(text_dir);
  const uint64_t corpus_hash = fs::exists(text_dir / "corpus.json") ? fnv1a64_file(text_dir / "corpus.json") : 0;

  // What the shards depend on: if dataset.json records the same, and the shards verify, skip.
  json build = {{"preset", o.preset},          {"seed", o.seed},
                {"holdout", o.holdout},        {"tokenizer", o.tokenizer},
                {"vocab_size_requested", o.vocab_size}, {"corpus_json_fnv1a64", hex64(corpus_hash)}};
  if (fs::exists(o.out / "dataset.json")) {
    try {
      DatasetInfo have = load_dataset(o.out);
      std::ifstream in(o.out / "dataset.json");
      json manifest = json::parse(in);
      if (manifest.contains("build") && manifest["build"] == build) {
        Shard::open(have.train_shard);
        Shard::open(have.valid_shard);
        std::cout << "remoe data: " << (o.out / "dataset.json").string() << " is up to date (nothing to do)\n";
        return o.out;
      }
      std::cout << "remoe data: dataset.json was built with other options: rebuilding the tokenizer and shards\n";
    } catch (const Error& e) {
      std::cout << "remoe data: existing dataset is not usable (" << e.what() << "): rebuilding\n";
    }
  }

  // 2. the tokenizer.
  std::unique_ptr<Tokenizer> tok;
  DatasetInfo info;
  info.dir = o.out;
  if (o.tokenizer == "sentencepiece") {
    const fs::path sample = o.out / "tokenizer_sample.txt";
    write_tokenizer_sample(text_dir, domains, o.tokenizer_sample_mb << 20, sample);
    BpeTrainOptions bpe;
    bpe.vocab_size = o.vocab_size;
    bpe.seed = o.seed;
    const auto t1 = Clock::now();
    train_sentencepiece(sample, o.out / "tokenizer", bpe);
    fs::remove(sample);
    std::cout << fmt::format("remoe data: tokenizer: SentencePiece BPE, vocab {}, trained in {:.0f} s -> {}\n",
                             o.vocab_size, std::chrono::duration<double>(Clock::now() - t1).count(),
                             (o.out / "tokenizer.model").string());
    info.tokenizer = "tokenizer.model";
  } else {
    const fs::path gpt2 = o.out / "gpt2";
    const std::string cmd = "bash " + shell_quote((fs::path(REMOE_SOURCE_DIR) / "experiments/data/fetch_gpt2.sh").string()) +
                            " " + shell_quote(gpt2.string());
    REMOE_CHECK(std::system(cmd.c_str()) == 0, "remoe data: fetching the GPT-2 vocabulary failed");
    info.tokenizer = "gpt2";
  }
  tok = load_tokenizer(o.out / info.tokenizer);
  info.vocab_size = static_cast<uint32_t>(tok->vocab_size());
  info.domains = domains;

  // 3. the shards.
  info.train_shard = o.out / "train.bin";
  info.valid_shard = o.out / "valid.bin";
  for (const auto& [split, path] : {std::pair<std::string, fs::path>{"train", info.train_shard}, {"valid", info.valid_shard}}) {
    const auto t1 = Clock::now();
    auto [docs, tokens] = write_split(*tok, text_dir, split, domains, path);
    std::cout << fmt::format("remoe data: {}: {} documents, {} tokens, {:.1f} MB, encoded in {:.0f} s -> {}\n", split,
                             docs, tokens, static_cast<double>(fs::file_size(path)) / 1e6,
                             std::chrono::duration<double>(Clock::now() - t1).count(), path.string());
  }

  // 4. the manifest (written last: its presence means the dataset is complete).
  write_dataset_manifest(info, build);
  std::cout << fmt::format("remoe data: done in {:.0f} s: {} ({} domains, vocab {})\n",
                           std::chrono::duration<double>(Clock::now() - t0).count(), (o.out / "dataset.json").string(),
                           domains.size(), info.vocab_size);
  return o.out;
}

}  // namespace remoe::data
