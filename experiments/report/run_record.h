// What `remoe report` reads from one run: its place in a sweep (sweep, label, seed, axis values),
// the config values the tables need, how it ended, its final held-out loss, and its curves.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace remoe::experiments {

using Curve = std::vector<std::pair<int64_t, double>>;  // (step, value)

// What `remoe eval` measured on a run's checkpoint (its eval.json), in the file's order.
struct EvalScores {
  int64_t step = 0;
  int64_t limit = 0;                                         // zero-shot items per task (0 = all)
  std::vector<std::pair<std::string, double>> domain_loss;   // held-out loss per domain, then "all"
  std::vector<std::pair<std::string, double>> task_acc;      // zero-shot acc per task
};

struct RunRecord {
  std::string sweep = "-", experiment = "none", scale, label, name;
  int64_t seed = 0;
  std::map<std::string, std::string> axis_values;  // axis name → level label
  std::map<std::string, int64_t> axis_index;       // axis name → level position
  std::string compute_matched_to;                  // run name of the ReMoE reference, if any
  std::string router;                              // moe.router
  int64_t num_experts = 0, topk = 0, granularity = 1, dense_multiplier = 1, steps = 0;
  std::string end = "not started";                 // finished | interrupted | failed | running | not started
  std::optional<double> valid_loss;                // the last evaluation, when finished
  double tokens_per_s = 0, final_sparsity = 0;
  Curve train_loss, valid_curve, sparsity, lambda;
  Curve lm_loss, router_term;                      // "train" rows' lm_loss and aux_or_reg
  std::optional<EvalScores> eval;                  // eval.json, when the run was evaluated
  std::optional<EvalScores> final_eval;            // a finished run's last held-out eval per domain (summary.json)
  std::filesystem::path dir;                       // the run directory it was read from
};

// Loads every run named by `inputs`: run directories, sweep directories (holding sweep.json and
// run directories, or just run directories), or archives written by `remoe sweep --pack` (unpacked
// under `scratch`). Throws naming an input that is none of these.
std::vector<RunRecord> load_runs(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& scratch);

// One run directory; `index_entry` (from sweep.json) overrides the labels of its sweep_point.json.
RunRecord load_run(const std::filesystem::path& dir, const nlohmann::ordered_json& sweep_header,
                   const nlohmann::ordered_json& index_entry);

}  // namespace remoe::experiments
