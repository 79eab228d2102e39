// `remoe analyze`: the paper's analyses of trained runs (docs/experiments.md, "Analyses").
//   stages      ReMoE's three training stages from metrics.jsonl   (stages.cpp)
//   domains     expert use per domain on held-out text              (domains.cpp)
//   allocation  active experts per token id vs its frequency        (allocation.cpp)
//   load_balance  per-layer sparsity and per-expert load, imbalance  (load_balance.cpp)
//   stability   routing flip rate between consecutive checkpoints   (stability.cpp)
// Each returns one JSON object per run (an "error" or "not_applicable" field instead of results
// where the analysis cannot run) and the markdown section of analysis.md; the metric functions
// are in metrics.h, the figures are drawn by experiments/analyze/plot.py from the JSON.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/analyze/metrics.h"
#include "experiments/config/config.h"
#include "experiments/data/dataset.h"
#include "experiments/data/shard.h"
#include "experiments/report/run_record.h"
#include "models/transformer.h"

namespace remoe::experiments {

// ---- stages (needs only metrics.jsonl and config.toml) ----
// {"run", "label", "seed", "router", "applies", "message" (when it does not apply), "target",
//  "steps", "interval", "window_rows", "stage1_end", "stage3_start" (null: not settled),
//  "first_in_band", "out_of_band_fraction" (null: never in the band), "settling_fraction", "stage3_sparsity": {mean, std, n}, "curves": {step, sparsity,
//  running_mean, lambda, lm_loss, router_term}, "png"}
nlohmann::ordered_json analyze_stages(const RunRecord& run, const std::string& key, const StageOptions& options);
// Per-run table, then per label (mean ± std over seeds).
std::string stages_markdown(const std::vector<nlohmann::ordered_json>& results, const StageOptions& options);

// ---- routing held-out text (routing.cpp), shared by the checkpoint analyses ----
// A run's resolved config, dataset and an (untrained) model of its shape. Throws naming the run
// when it is not a run directory or its router does not dispatch tokens to experts (dense, lory);
// `analyses` names the analyses in that message.
struct RunModel {
  std::string run, router;
  Config cfg;
  data::DatasetInfo dataset;
  std::unique_ptr<Transformer> model;
};
RunModel load_run_model(const std::filesystem::path& run_dir, const std::string& analyses);

// The held-out text the analyses route: one EOD, then whole documents in shard order while their
// domain holds fewer than max_tokens_per_domain tokens, padded with EOD to whole windows of seq_len.
// With cut_last_document, a domain's last document is cut so that it holds exactly the cap (or all
// its held-out tokens, if fewer).
struct HeldoutText {
  std::vector<int64_t> tokens;
  std::vector<int32_t> domain;  // per position; −1 for the EOD in front and the padding
  int64_t seq_len = 0, windows = 0;
};
HeldoutText heldout_text(const data::Shard& valid, size_t n_domains, int64_t max_tokens_per_domain, int64_t seq_len,
                         bool cut_last_document = false);

// Routes the windows through the model (eval mode, no gradients) `batch` windows at a time and
// calls on_layer(layer, first, token, expert, experts) for every batch and MoE layer: the batch's
// (token, expert) pairs, token counted from the batch's first position `first` in text.tokens.
using LayerRouting = std::function<void(size_t layer, size_t first, const std::vector<int64_t>& token,
                                        const std::vector<int64_t>& expert, int64_t experts)>;
// The note of an analysis whose newest checkpoint is not the run's last step (the run is still
// training or stopped early); empty when it is.
std::string unfinished_note(int64_t newest_step, int64_t train_steps);

void route_heldout(Transformer& model, const HeldoutText& text, int64_t batch, const std::string& run,
                   const LayerRouting& on_layer);

// ---- the held-out routing pass shared by domains, allocation and load_balance ----
struct RoutingStats {
  std::string run, router, checkpoint, checkpoint_note;
  int64_t step = 0, train_steps = 0, layers = 0, experts = 0, vocab = 0;
  int64_t topk = 1, granularity = 1;                       // k and G (experts = E·G, k·G active)
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

// ---- load_balance (the final checkpoint, held-out text) ----
// {"run", "router", "checkpoint", "step", "layers", "experts", "topk", "granularity",
//  "target_sparsity", "tokens", "load" [layer][expert] (fraction of the layer's pairs),
//  "pairs" [layer], "sparsity" [layer] (1 − pairs / (T·E)), "active_experts" [layer],
//  "max_over_mean", "min_over_mean", "cv" [layer] (null: the layer routed nothing), "mean_cv",
//  "mean_max_over_mean", "png"}
nlohmann::ordered_json analyze_load_balance(const RoutingStats& stats, const std::string& key, const std::string& label);
std::string load_balance_markdown(const std::vector<nlohmann::ordered_json>& results);

// ---- stability (every verified checkpoint, a fixed held-out batch) ----
// {"run", "label", "router", "layers", "experts", "tokens", "tokens_per_domain", "checkpoints"
//  (steps), "density" (per checkpoint: routed pairs / (T·E)), "pairs": {"from", "to", "flip_rate",
//  "changed_fraction", "layer_flip_rate" [pair][layer]}, "mean_flip_rate", "late_mean_flip_rate"
//  (pairs ending after half of train.steps), "skipped" (checkpoints beyond train.steps)}. Throws
// naming the run when it has fewer than two verified checkpoints or does not dispatch tokens.
nlohmann::ordered_json analyze_stability(const std::filesystem::path& run_dir, const std::string& key,
                                         const std::string& label, int64_t tokens_per_domain);
std::string stability_markdown(const std::vector<nlohmann::ordered_json>& results);

}  // namespace remoe::experiments
