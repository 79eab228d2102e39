// The stability analysis: how much a run's routing changes between consecutive checkpoints. The
// same fixed held-out tokens are routed by every verified checkpoint of the run; for checkpoints
// i−1 and i the flip rate is Σ_l |M_i − M_{i−1}| / (L·T·E) over the 0/1 routing masks M [T, E] of
// the L MoE layers (metrics.h routing_flips; docs/experiments.md, "Analyses").
#include <fmt/format.h>

#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/train/checkpoint.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

ordered_json analyze_stability(const fs::path& run_dir, const std::string& key, const std::string& label,
                               int64_t tokens_per_domain) {
  RunModel m = load_run_model(run_dir, "stability");
  const std::string& run = m.run;
  const int64_t train_steps = m.cfg.integer("train.steps");
  std::vector<std::pair<int64_t, fs::path>> checkpoints = complete_checkpoints(run_dir / "ckpt");
  std::vector<int64_t> skipped;
  std::erase_if(checkpoints, [&](const auto& c) {
    if (c.first <= train_steps) return false;
    skipped.push_back(c.first);
    return true;
  });
  REMOE_CHECK(checkpoints.size() >= 2, "analyze: run ", run, " has ", checkpoints.size(), " verified checkpoint(s) under ",
              (run_dir / "ckpt").string(),
              "; the stability analysis compares consecutive checkpoints and needs at least 2 (train with a small "
              "ckpt.interval and a large ckpt.keep, e.g. experiments/sweeps/stability.toml)");

  const data::Shard valid = data::open_dataset_shard(m.dataset, "valid");
  const HeldoutText text = heldout_text(valid, m.dataset.domains.size(), tokens_per_domain, m.cfg.integer("model.seq_len"),
                                      /*cut_last_document=*/true);
  // Position → row of the masks (only real tokens: not the EOD in front or the padding).
  std::vector<int64_t> row(text.tokens.size(), -1);
  int64_t T = 0;
  for (size_t p = 0; p < text.tokens.size(); ++p)
    if (text.domain[p] >= 0) row[p] = T++;
  const int64_t layers = m.model->config().n_layers;
  const int64_t batch = m.cfg.integer("train.batch_size");

  ordered_json j;
  j["run"] = run;
  j["key"] = key;
  j["label"] = label;
  j["router"] = m.router;
  j["layers"] = layers;
  j["tokens"] = T;
  j["tokens_per_domain"] = tokens_per_domain;
  j["train_steps"] = train_steps;
  int64_t experts = 0;
  std::vector<std::vector<uint8_t>> previous;
  ordered_json steps = ordered_json::array(), density = ordered_json::array();
  ordered_json from = ordered_json::array(), to = ordered_json::array(), flip = ordered_json::array(),
               changed = ordered_json::array(), layer_flip = ordered_json::array();
  double sum = 0, late_sum = 0;
  int64_t late_n = 0;
  for (const auto& [step, dir] : checkpoints) {
    load_checkpoint(dir, *m.model, nullptr);
    std::vector<std::vector<uint8_t>> masks(static_cast<size_t>(layers));
    route_heldout(*m.model, text, batch, run,
                  [&](size_t l, size_t first, const std::vector<int64_t>& tok, const std::vector<int64_t>& exp, int64_t e) {
                    if (experts == 0) experts = e;
                    REMOE_CHECK(e == experts, "analyze: run ", run, ": layer ", l, " has ", e, " experts, not ", experts);
                    std::vector<uint8_t>& mask = masks[l];
                    if (mask.empty()) mask.assign(static_cast<size_t>(T * experts), 0);
                    for (size_t i = 0; i < tok.size(); ++i) {
                      const int64_t r = row[first + static_cast<size_t>(tok[i])];
                      if (r >= 0) mask[static_cast<size_t>(r * experts + exp[i])] = 1;
                    }
                  });
    double ones = 0;
    for (const auto& mask : masks)
      for (uint8_t v : mask) ones += v;
    steps.push_back(step);
    density.push_back(ones / (static_cast<double>(layers) * static_cast<double>(T) * static_cast<double>(experts)));
    if (!previous.empty()) {
      const RoutingFlips f = routing_flips(previous, masks, experts);
      from.push_back(steps[steps.size() - 2]);
      to.push_back(step);
      flip.push_back(f.flip_rate);
      changed.push_back(f.changed_fraction);
      layer_flip.push_back(f.layer_flip_rate);
      sum += f.flip_rate;
      if (2 * step > train_steps) {
        late_sum += f.flip_rate;
        late_n += 1;
      }
    }
    previous = std::move(masks);
  }
  j["experts"] = experts;
  j["checkpoints"] = steps;
  j["density"] = density;
  j["pairs"] = {{"from", from}, {"to", to}, {"flip_rate", flip}, {"changed_fraction", changed}, {"layer_flip_rate", layer_flip}};
  j["mean_flip_rate"] = sum / static_cast<double>(flip.size());
  j["late_mean_flip_rate"] = late_n ? ordered_json(late_sum / static_cast<double>(late_n)) : ordered_json(nullptr);
  if (!skipped.empty()) j["skipped"] = skipped;
  return j;
}

std::string stability_markdown(const std::vector<ordered_json>& results) {
  std::string s = "## Stability\n\n";
  s += "Routing flip rate between consecutive checkpoints on the same held-out tokens: Σ_l |M_i − M_{i−1}| / (L·T·E) "
       "over the 0/1 routing masks M [T, E] of the MoE layers; changed = the fraction of (layer, token) rows whose "
       "expert set differs; late = the mean over the checkpoint pairs ending after half of training.\n\n";
  s += "| run | router | E | tokens | checkpoints | mean flip rate | late flip rate | last flip rate | last changed |\n";
  s += "|---|---|---:|---:|---|---:|---:|---:|---:|\n";
  std::vector<std::string> errors;
  for (const ordered_json& j : results) {
    if (j.contains("error")) {
      errors.push_back(j["error"].get<std::string>());
      continue;
    }
    const ordered_json& c = j["checkpoints"];
    const ordered_json& p = j["pairs"];
    s += fmt::format("| {} | {} | {} | {} | {} ({}–{}) | {:.5f} | {} | {:.5f} | {:.4f} |\n", j["key"].get<std::string>(),
                     j["router"].get<std::string>(), j["experts"].get<int64_t>(), j["tokens"].get<int64_t>(), c.size(),
                     c.front().get<int64_t>(), c.back().get<int64_t>(), j["mean_flip_rate"].get<double>(),
                     j["late_mean_flip_rate"].is_null() ? std::string("–")
                                                        : fmt::format("{:.5f}", j["late_mean_flip_rate"].get<double>()),
                     p["flip_rate"].back().get<double>(), p["changed_fraction"].back().get<double>());
  }
  for (const std::string& e : errors) s += "\n- " + e;
  if (!errors.empty()) s += "\n";
  return s;
}

}  // namespace remoe::experiments
