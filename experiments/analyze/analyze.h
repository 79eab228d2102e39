// `remoe analyze`: the paper's analyses of trained runs (docs/experiments.md, "Analyses").
//   stages      ReMoE's three training stages from metrics.jsonl   (stages.cpp)
//   domains     expert use per domain on held-out text              (domains.cpp)
//   allocation  active experts per token id vs its frequency        (allocation.cpp)
// Each returns one JSON object per run (an "error" or "not_applicable" field instead of results
// where the analysis cannot run) and the markdown section of analysis.md; the metric functions
// are in metrics.h, the figures are drawn by experiments/analyze/plot.py from the JSON.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/analyze/metrics.h"
#include "experiments/report/run_record.h"

namespace remoe::experiments {

// ---- stages (needs only metrics.jsonl and config.toml) ----
// {"run", "label", "seed", "router", "applies", "message" (when it does not apply), "target",
//  "steps", "interval", "window_rows", "stage1_end", "stage3_start" (null: not settled),
//  "settling_fraction", "stage3_sparsity": {mean, std, n}, "curves": {step, sparsity,
//  running_mean, lambda, lm_loss, router_term}, "png"}
nlohmann::ordered_json analyze_stages(const RunRecord& run, const std::string& key, const StageOptions& options);
// Per-run table, then per label (mean ± std over seeds).
std::string stages_markdown(const std::vector<nlohmann::ordered_json>& results, const StageOptions& options);

// ---- the held-out routing pass shared by domains and allocation ----
struct RoutingStats {
  std::string run, router, checkpoint, checkpoint_note;
  int64_t step = 0, train_steps = 0, layers = 0, experts = 0, vocab = 0;
  std::vector<std::string> domains;
  std::vector<int64_t> domain_tokens;                      // routed (input) tokens per domain
  std::vector<std::vector<std::vector<int64_t>>> pairs;    // [layer][domain][expert]: routed pairs
  std::vector<int64_t> token_occurrences, token_pairs;     // per token id: held-out occurrences, pairs over all layers
  std::vector<int64_t> train_frequency;                    // per token id, in the train shard (when asked)
  std::vector<std::string> token_text;                     // per token id, decoded (when asked)
};

// Loads the run's config, dataset and newest verified checkpoint (≤ train.steps) and routes up to
// max_tokens_per_domain held-out tokens per domain (whole documents, in shard order, behind one
// EOD, windows of model.seq_len). Throws naming the run when it has no checkpoint or its router
// does not dispatch tokens to experts (dense, lory).
RoutingStats collect_routing(const std::filesystem::path& run_dir, int64_t max_tokens_per_domain, bool with_train_frequency);

// ---- domains ----
// {"run", "router", "checkpoint", "step", "layers", "experts", "domains", "tokens" (per domain),
//  "fractions" [layer][domain][expert], "entropy_bits" [layer][domain], "max_entropy_bits",
//  "mean_entropy_bits" (per domain, over layers), "active_experts" (per domain), "png"}
nlohmann::ordered_json analyze_domains(const RoutingStats& stats, const std::string& key);
std::string domains_markdown(const std::vector<nlohmann::ordered_json>& results);

// ---- allocation ----
// {"run", "router", "min_count", "tokens" (ids with ≥ min_count held-out occurrences), "spearman",
//  "points": {id, train_count, heldout_count, active}, "bins" (by train-frequency decile),
//  "most_served", "least_served" [{id, text, train_count, heldout_count, active}], "png"}
nlohmann::ordered_json analyze_allocation(const RoutingStats& stats, const std::string& key, int64_t min_count);
std::string allocation_markdown(const std::vector<nlohmann::ordered_json>& results);

}  // namespace remoe::experiments
