// Shared by the runner suites: a tiny two-domain dataset built once per test binary, a scratch
// root removed at exit, and a tiny run configuration (d 32, 2 layers, E 4) that trains in well
// under a second.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/data/build_dataset.h"
#include "experiments/train/run.h"
#include "test_util.h"

namespace remoe::test {

// One scratch directory per test process, removed when the process exits.
struct TempRoot {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("remoe_test_runner_" + std::to_string(::getpid()));
  TempRoot() {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

inline std::filesystem::path temp_root() {
  static TempRoot root;
  return root.path;
}

// A two-domain dataset from tests/data/gpl3.txt: paragraphs become documents; every 8th pair is held
// out. Built once per test binary (SentencePiece vocab 512: about a second).
inline std::filesystem::path tiny_dataset() {
  namespace fs = std::filesystem;
  static fs::path dir = [] {
    fs::path d = temp_root() / "data";
    fs::create_directories(d / "text/train");
    fs::create_directories(d / "text/valid");
    std::string text = read_file_bytes(REMOE_SOURCE_DIR "/tests/data/gpl3.txt");
    std::vector<std::string> paragraphs;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find("\n\n", pos);
      if (end == std::string::npos) end = text.size();
      if (end > pos + 20) paragraphs.push_back(text.substr(pos, end - pos));
      pos = end + 2;
    }
    std::ofstream files[2][2] = {{std::ofstream(d / "text/train/legal.jsonl"), std::ofstream(d / "text/train/prose.jsonl")},
                                 {std::ofstream(d / "text/valid/legal.jsonl"), std::ofstream(d / "text/valid/prose.jsonl")}};
    for (size_t i = 0; i < paragraphs.size(); ++i) {
      nlohmann::json doc = {{"domain", i % 2 ? "prose" : "legal"}, {"source", "gpl3"}, {"text", paragraphs[i]}};
      files[(i / 2) % 8 == 0][i % 2] << doc.dump() << "\n";
    }
    for (auto& split : files)
      for (auto& f : split) f.close();
    data::BuildOptions o;
    o.out = d;
    o.skip_corpus = true;
    o.vocab_size = 512;
    o.tokenizer_sample_mb = 1;
    data::build_dataset(o);
    return d;
  }();
  return dir;
}

// A private copy of the tiny dataset (for tests that damage it), under temp_root()/<name>.
inline std::filesystem::path copy_of_tiny_dataset(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path to = temp_root() / name;
  fs::remove_all(to);
  fs::copy(tiny_dataset(), to, fs::copy_options::recursive);
  return to;
}

inline experiments::RunOptions tiny_run(const std::string& name, int64_t steps) {
  experiments::RunOptions o;
  o.quiet = true;
  experiments::Config& c = o.config;
  c.set("data.dir", tiny_dataset().string());
  c.set("run.dir", (temp_root() / "runs").string());
  c.set("run.name", name);
  c.apply_overrides({"--model.d_model=32", "--model.n_layers=2", "--model.n_heads=2", "--model.n_kv_heads=2",
                     "--model.seq_len=32", "--moe.num_experts=4", "--train.batch_size=4", "--train.lr=3e-3",
                     "--train.min_lr=3e-4", "--log.interval=1", "--eval.interval=0", "--eval.max_tokens=512",
                     "--ckpt.interval=10", "--ckpt.keep=5"});
  c.set("train.steps", steps);
  return o;
}

// The "train" rows' losses of a run's metrics.jsonl.
inline std::vector<double> losses(const std::filesystem::path& run_dir) {
  std::vector<double> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["kind"] == "train") out.push_back(j["loss"].get<double>());
  }
  return out;
}

inline nlohmann::json read_json(const std::filesystem::path& file) { return nlohmann::json::parse(read_file_bytes(file)); }

}  // namespace remoe::test
