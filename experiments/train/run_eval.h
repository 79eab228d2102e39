// Evaluation of a run directory (`remoe eval`, and the demo): loads the run's resolved config,
// its dataset and a checkpoint, then measures the held-out loss and bits-per-byte per domain and,
// when the benchmark files are present, the zero-shot tasks. Writes <run>/eval.json, holding the
// run's lock (run_lock.h) meanwhile. Without an explicit checkpoint it takes the newest that
// verifies and says which newer ones it passed over and why ("checkpoint_note", and on stderr).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace remoe::experiments {

struct RunEvalOptions {
  std::filesystem::path run_dir;
  std::optional<std::filesystem::path> checkpoint;  // default: the run's newest complete one
  bool heldout = true;
  int64_t max_tokens_per_domain = 0;                // held-out; 0 = every document (< 0 is an error)
  bool zero_shot = true;
  std::filesystem::path eval_dir;                   // default: eval::default_eval_dir()
  std::vector<std::string> tasks;                   // default: all four
  int64_t limit = 0;                                // zero-shot items per task; 0 = all (< 0 is an error)
  bool quiet = false;
};

// Returns (and writes to <run>/eval.json) {"checkpoint", "step", "heldout": {...}, "zero_shot": {...}}.
nlohmann::ordered_json evaluate_run(const RunEvalOptions& options);

// The markdown tables of an evaluate_run() result.
std::string eval_markdown(const nlohmann::ordered_json& result);

}  // namespace remoe::experiments
